"""Client streams against a real stanzad (RFC 6120/6121): STARTTLS, Direct
TLS with ALPN, SASL SCRAM (with tls-server-end-point channel binding) and
PLAIN and their failures, resource binding and conflicts, routing between
users homed on different reactors, bare-JID delivery by priority,
presence among a user's own resources, the IQs the server answers, the
restricted XML of RFC 6120 §11 and 1,000 concurrent logins.

Every node runs 2 reactors with a certificate for 'localhost' made at test
time and the listeners of xmpp_util.c2s_node(); accounts are created with
stanzactl beside $STANZAD. slixmpp is used where it interoperates (see
xmpp_util.slix_client about its SCRAM channel binding), raw sockets
elsewhere. conftest's node fixture stops every node and checks that it
exits 0 with a sanitizer-clean stderr.
"""

import asyncio
import hashlib
import signal
import time
import uuid
import xml.etree.ElementTree as ET

import pytest

from conftest import msum, per_reactor
from xmpp_util import (DOMAIN, NS_BIND, NS_CLIENT, NS_SASL, NS_TLS, STREAM_HEADER, RawClient,
                       Scram, StreamClosed, add_user, async_login, b64, c2s_node, home_reactor,
                       import_users, local, login, q, run_loop, slix_client, slix_start,
                       slix_stop, stanza_error)

PW = "c2s-Secret-1"
NS_PING = "urn:xmpp:ping"
NS_INFO = "http://jabber.org/protocol/disco#info"
NS_ITEMS = "http://jabber.org/protocol/disco#items"
NS_VERSION = "jabber:iq:version"


# Time bound of each test in seconds (ASan build); others get DEFAULT_BOUND.
BOUNDS = {
    "test_messages_across_reactors": 150,
    "test_restricted_xml_and_stream_errors": 120,
    "test_thousand_concurrent_logins": 240,
}
DEFAULT_BOUND = 90


@pytest.fixture(autouse=True)
def time_bound(request):
    """Every test ends within its bound (SIGALRM in the main thread)."""
    secs = BOUNDS.get(request.node.originalname, DEFAULT_BOUND)

    def expired(signum, frame):
        raise TimeoutError(f"test exceeded its {secs}s bound")
    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, secs)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def msg(to, body, mid, typ="chat"):
    return (f"<message to='{to}' type='{typ}' id='{mid}'><body>{body}</body></message>")


def presence(priority=None, typ=None):
    t = f" type='{typ}'" if typ else ""
    p = f"<priority>{priority}</priority>" if priority is not None else ""
    return f"<presence{t}>{p}</presence>"


def is_msg(el):
    return el.tag == q(NS_CLIENT, "message")


def is_presence(el):
    return el.tag == q(NS_CLIENT, "presence")


def body(el):
    b = el.find(q(NS_CLIENT, "body"))
    return b.text if b is not None else None


def new_loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def close_loop(loop):
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in pending:
        t.cancel()
    if pending:
        loop.run_until_complete(asyncio.wait(pending, timeout=5))
    loop.close()
    asyncio.set_event_loop(None)


# ---- 1. STARTTLS + SCRAM-SHA-1 -----------------------------------------------


def test_starttls_scram_sha1(node):
    n = c2s_node(node)
    add_user(n, "alice", PW)

    # Before TLS the required STARTTLS is the only feature (RFC 6120 §5.3.1).
    with RawClient(n.xmpp["starttls"], cafile=n.cert) as c:
        f = c.open()
        st = f.find(q(NS_TLS, "starttls"))
        assert st is not None and st.find(q(NS_TLS, "required")) is not None, ET.tostring(f)
        assert c.mechanisms(f) == [], ET.tostring(f)
        f = c.starttls()
        mechs = c.mechanisms(f)
        assert "SCRAM-SHA-1" in mechs and "SCRAM-SHA-256-PLUS" in mechs and "PLAIN" in mechs, mechs
        # SCRAM-SHA-1-PLUS only with tls.scram_sha1_plus (test_login_interop).
        assert "SCRAM-SHA-1-PLUS" not in mechs, mechs
        assert f.find(q(NS_TLS, "starttls")) is None
        # A client that supports channel binding but thinks the server does
        # not ('y') is a downgrade once -PLUS was advertised: refused.
        el, _ = c.auth_scram("SCRAM-SHA-256", "alice", PW, flag="y")
        assert el.tag == q(NS_SASL, "failure") and local(el[0].tag) == "not-authorized", \
            ET.tostring(el)
        el, verified = c.auth_scram("SCRAM-SHA-1", "alice", PW)
        assert el.tag == q(NS_SASL, "success"), ET.tostring(el)
        assert verified, "server signature v= does not verify"
        assert c.bind("raw") == f"alice@{DOMAIN}/raw"

    # slixmpp, SCRAM-SHA-1 with its channel binding hidden (gs2 flag 'n').
    loop = new_loop()
    try:
        x = slix_client(loop, f"alice@{DOMAIN}/slix", PW, n.cert, mech="SCRAM-SHA-1",
                        no_channel_binding=True, plugins=["xep_0199"])
        run_loop(loop, slix_start(x, n.xmpp["starttls"]), 30)
        assert str(x.boundjid) == f"alice@{DOMAIN}/slix"
        run_loop(loop, x["xep_0199"].ping(DOMAIN, timeout=10), 15)
        run_loop(loop, slix_stop(x), 15)
    finally:
        close_loop(loop)


# ---- 2. SCRAM-SHA-256-PLUS with tls-server-end-point -----------------------------


@pytest.mark.parametrize("how", ["starttls", "direct"])
def test_scram_sha256_plus_endpoint(node, how):
    n = c2s_node(node)
    add_user(n, "bob", PW)

    def connect():
        if how == "starttls":
            c = RawClient(n.xmpp["starttls"], cafile=n.cert)
            c.open()
            return c, c.starttls()
        c = RawClient(n.xmpp["direct"], direct_tls=True, cafile=n.cert)
        return c, c.open()

    c, f = connect()
    with c:
        mechs = c.mechanisms(f)
        assert "SCRAM-SHA-256-PLUS" in mechs, mechs
        cbs = f.find("{urn:xmpp:sasl-cb:0}sasl-channel-binding")
        assert cbs is not None, ET.tostring(f)
        types = {e.get("type") for e in cbs}
        assert "tls-server-end-point" in types, types
        if c.sock.version() == "TLSv1.3":
            assert "tls-exporter" in types, types
        # RFC 5929 §4.1: SHA-256 of the DER certificate (ECDSA-SHA256).
        ep = hashlib.sha256(c.sock.getpeercert(binary_form=True)).digest()
        el, verified = c.auth_scram("SCRAM-SHA-256-PLUS", "bob", PW,
                                    cb=("tls-server-end-point", ep))
        assert el.tag == q(NS_SASL, "success"), ET.tostring(el)
        assert verified, "server signature v= does not verify"
        assert c.bind("plus") == f"bob@{DOMAIN}/plus"
        # The session works: ping the server.
        r = c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN)
        assert r.get("type") == "result", ET.tostring(r)

    # Wrong channel-binding data: not-authorized.
    c, f = connect()
    with c:
        ep = bytearray(hashlib.sha256(c.sock.getpeercert(binary_form=True)).digest())
        ep[0] ^= 0x01
        el, _ = c.auth_scram("SCRAM-SHA-256-PLUS", "bob", PW,
                             cb=("tls-server-end-point", bytes(ep)))
        assert el.tag == q(NS_SASL, "failure"), ET.tostring(el)
        assert local(el[0].tag) == "not-authorized", ET.tostring(el)
        # A channel binding type the server did not offer fails as well.
        el, _ = c.auth_scram("SCRAM-SHA-256-PLUS", "bob", PW, cb=("tls-unique", b"x" * 12))
        assert el.tag == q(NS_SASL, "failure"), ET.tostring(el)
        # The stream is still usable for a correct attempt (2 failures < 3).
        ep[0] ^= 0x01
        el, verified = c.auth_scram("SCRAM-SHA-256-PLUS", "bob", PW,
                                    cb=("tls-server-end-point", bytes(ep)))
        assert el.tag == q(NS_SASL, "success") and verified, ET.tostring(el)


# ---- 3. Direct TLS and ALPN ---------------------------------------------------------


def test_direct_tls_alpn(node):
    n = c2s_node(node)
    add_user(n, "carol", PW)
    # ALPN xmpp-client offered (XEP-0368) and accepted.
    with RawClient(n.xmpp["direct"], direct_tls=True, alpn=["xmpp-client"], cafile=n.cert) as c:
        assert c.sock.selected_alpn_protocol() == "xmpp-client"
        f = c.open()
        assert f.find(q(NS_TLS, "starttls")) is None, "STARTTLS offered inside Direct TLS"
        assert "PLAIN" in c.mechanisms(f)
        assert c.auth_plain("carol", PW).tag == q(NS_SASL, "success")
        assert c.bind("alpn") == f"carol@{DOMAIN}/alpn"
    # Without ALPN it works too.
    with RawClient(n.xmpp["direct"], direct_tls=True, cafile=n.cert) as c:
        assert c.sock.selected_alpn_protocol() is None
        c.open()
        assert c.auth_plain("carol", PW).tag == q(NS_SASL, "success")
        assert c.bind("noalpn") == f"carol@{DOMAIN}/noalpn"

    # slixmpp over Direct TLS with PLAIN.
    loop = new_loop()
    try:
        x = slix_client(loop, f"carol@{DOMAIN}/slix", PW, n.cert, mech="PLAIN",
                        plugins=["xep_0199"])
        run_loop(loop, slix_start(x, n.xmpp["direct"], use_ssl=True), 30)
        assert str(x.boundjid) == f"carol@{DOMAIN}/slix"
        run_loop(loop, x["xep_0199"].ping(DOMAIN, timeout=10), 15)
        run_loop(loop, slix_stop(x), 15)
    finally:
        close_loop(loop)


# ---- 4. wrong password, retries -----------------------------------------------------


def test_wrong_password_and_retries(node):
    n = c2s_node(node)
    add_user(n, "dave", PW)
    with RawClient(n.xmpp["plain"]) as c:
        f = c.open()
        assert "SCRAM-SHA-256" in c.mechanisms(f)
        # Failure 1: SCRAM with a wrong password.
        el, _ = c.auth_scram("SCRAM-SHA-256", "dave", "wrong")
        assert el.tag == q(NS_SASL, "failure") and local(el[0].tag) == "not-authorized", \
            ET.tostring(el)
        # Failure 2: PLAIN with a wrong password.
        el = c.auth_plain("dave", "wrong")
        assert el.tag == q(NS_SASL, "failure") and local(el[0].tag) == "not-authorized", \
            ET.tostring(el)
        # Failure 3: an unknown user looks the same; then the stream ends.
        el, _ = c.auth_scram("SCRAM-SHA-256", "nobody", "wrong")
        assert el.tag == q(NS_SASL, "failure") and local(el[0].tag) == "not-authorized", \
            ET.tostring(el)
        assert c.stream_error() == "policy-violation"
    # The right password still works on a new stream.
    c = login(n, "dave", PW, "ok")
    c.close()


# ---- 5. PLAIN and TLS policy ----------------------------------------------------------


def test_plain_needs_tls(node):
    n = c2s_node(node)
    add_user(n, "erin", PW)
    # tls: none without plain_without_tls: no PLAIN, no -PLUS.
    with RawClient(n.xmpp["noplain"]) as c:
        f = c.open()
        mechs = c.mechanisms(f)
        assert "PLAIN" not in mechs, mechs
        assert "SCRAM-SHA-256" in mechs, mechs
        assert not [m for m in mechs if m.endswith("-PLUS")], mechs
        assert f.find(q(NS_TLS, "starttls")) is None
        el = c.auth_plain("erin", PW)
        assert el.tag == q(NS_SASL, "failure"), ET.tostring(el)
        assert local(el[0].tag) in ("invalid-mechanism", "encryption-required"), ET.tostring(el)
        # SCRAM (flag 'n') is fine there.
        el, verified = c.auth_scram("SCRAM-SHA-256", "erin", PW)
        assert el.tag == q(NS_SASL, "success") and verified, ET.tostring(el)
        assert c.bind("scram") == f"erin@{DOMAIN}/scram"
    # plain_without_tls: true offers PLAIN.
    with RawClient(n.xmpp["plain"]) as c:
        assert "PLAIN" in c.mechanisms(c.open())
    # starttls-required before TLS: any <auth> is encryption-required.
    with RawClient(n.xmpp["starttls"], cafile=n.cert) as c:
        c.open()
        el = c.auth_plain("erin", PW)
        assert el.tag == q(NS_SASL, "failure"), ET.tostring(el)
        assert local(el[0].tag) == "encryption-required", ET.tostring(el)
        el, _ = c.auth_scram("SCRAM-SHA-256", "erin", PW)
        assert el.tag == q(NS_SASL, "failure"), ET.tostring(el)
        assert local(el[0].tag) == "encryption-required", ET.tostring(el)
        # After STARTTLS on the same connection, login works.
        c.starttls()
        assert c.auth_plain("erin", PW).tag == q(NS_SASL, "success")
        assert c.bind("tls") == f"erin@{DOMAIN}/tls"


# ---- 6. resource conflict ----------------------------------------------------------


@pytest.mark.parametrize("how", ["plain", "direct"])
def test_bind_conflict(node, how):
    n = c2s_node(node)
    add_user(n, "frank", PW)
    add_user(n, "grace", PW)
    first = login(n, "frank", PW, "desk", how=how)
    try:
        second = login(n, "frank", PW, "desk", how=how)
        try:
            assert second.jid == f"frank@{DOMAIN}/desk"
            # RFC 6120 §7.7.2.2: the new session wins, the old one is closed.
            assert first.stream_error() == "conflict"
            with login(n, "grace", PW, "g") as g:
                g.send(msg(f"frank@{DOMAIN}/desk", "to-the-second", "m1"))
                el, _ = second.wait_for(is_msg, what="message on the second session")
                assert body(el) == "to-the-second"
                assert el.get("from") == f"grace@{DOMAIN}/g"
                # And the second session is really serving: server ping.
                r = second.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN)
                assert r.get("type") == "result"
        finally:
            second.close()
    finally:
        first.close()
    n.wait_idle()


def test_conflict_broadcasts_unavailable(node):
    n = c2s_node(node)
    add_user(n, "hank", PW)
    other = login(n, "hank", PW, "other")
    first = login(n, "hank", PW, "desk")
    second = None
    try:
        other.send(presence(0))
        first.send(presence(3))
        other.wait_for(lambda e: is_presence(e) and e.get("from") == f"hank@{DOMAIN}/desk")
        second = login(n, "hank", PW, "desk")
        assert first.stream_error() == "conflict"
        el, _ = other.wait_for(
            lambda e: is_presence(e) and e.get("from") == f"hank@{DOMAIN}/desk", timeout=3,
            what="unavailable presence of the replaced session")
        assert el.get("type") == "unavailable", ET.tostring(el)
    finally:
        for c in (other, first, second):
            if c:
                c.close()


# ---- 7. messages across reactors ------------------------------------------------------


# batch_wait_us: the same routing, handoffs and deliveries when reactors
# sleep through a batching window (core/reactor.c).
@pytest.mark.parametrize("batch_wait_us", [0, 5000])
def test_messages_across_reactors(node, batch_wait_us):
    n = c2s_node(node, node_extra={"batch_wait_us": batch_wait_us})
    users = [f"x{i:02d}" for i in range(24)]
    import_users(n, [(u, PW) for u in users], iterations=1)
    homes = {u: home_reactor(f"{u}@{DOMAIN}", 2) for u in users}
    r0 = [u for u in users if homes[u] == 0]
    r1 = [u for u in users if homes[u] == 1]
    pairs = list(zip(r0, r1))
    assert len(pairs) >= 8, f"hash spread too uneven: {len(r0)}/{len(r1)}"
    before = n.metrics()
    h0 = msum(before, "stanzad_handoffs_in_total")

    clients = {}
    try:
        # Plain, STARTTLS and Direct TLS in turn: TLS state moves with the
        # connection to the home reactor too.
        for i, u in enumerate(users):
            clients[u] = login(n, u, PW, "r", how=("plain", "starttls", "direct")[i % 3])
        # Users moved to their home reactor after SASL.
        assert msum(n.metrics(), "stanzad_handoffs_in_total") > h0
        # Each reactor holds its users' connections (plus, on one of them,
        # the admin connection answering the request; earlier ones may
        # still be closing, hence the polling).
        expect = {"0": len(r0), "1": len(r1)}
        last = {}

        def homed():
            opened = per_reactor(n.metrics(), "stanzad_connections_open")
            last["diff"] = {k: opened[k] - expect[k] for k in expect}
            return sorted(last["diff"].values()) == [0, 1]
        deadline = time.monotonic() + 10
        while not homed():
            assert time.monotonic() < deadline, f"open minus homes: {last['diff']}"
            time.sleep(0.1)

        per_dir = 5
        sent = {}  # recipient -> {(sender full jid, body)}
        for a, b in pairs:
            for src, dst in ((a, b), (b, a)):
                for k in range(per_dir):
                    text = f"{src}-to-{dst}-{k}-{uuid.uuid4().hex[:8]}"
                    clients[src].send(msg(f"{dst}@{DOMAIN}/r", text, f"{src}{k}"))
                    sent.setdefault(dst, set()).add((f"{src}@{DOMAIN}/r", text))
        for dst, want in sent.items():
            got = []
            deadline = time.monotonic() + 20
            while len(got) < len(want) and time.monotonic() < deadline:
                el, _ = clients[dst].wait_for(is_msg, timeout=deadline - time.monotonic())
                got.append((el.get("from"), body(el)))
            # Nothing more (no duplicate) arrives.
            got += [(e.get("from"), body(e)) for e in clients[dst].drain(0.15) if is_msg(e)]
            assert len(got) == len(set(got)), f"{dst}: duplicate delivery {got}"
            assert set(got) == want, f"{dst}: got {got}, want {want}"
    finally:
        for c in clients.values():
            c.close()
    n.wait_idle()


# ---- 8. bare JID routing by priority -----------------------------------------------------


def test_bare_jid_priority(node):
    n = c2s_node(node)
    add_user(n, "heidi", PW)
    add_user(n, "ivan", PW)
    add_user(n, "judy", PW)
    hi = login(n, "heidi", PW, "high")
    lo = login(n, "heidi", PW, "low")
    iv = login(n, "ivan", PW, "i")
    try:
        hi.send(presence(5))
        lo.send(presence(1))
        # Both see both presences (own resources); wait for lo's at hi.
        hi.wait_for(lambda e: is_presence(e) and e.get("from") == f"heidi@{DOMAIN}/low")
        lo.wait_for(lambda e: is_presence(e) and e.get("from") == f"heidi@{DOMAIN}/high")
        hi.drain(0.2)
        lo.drain(0.2)

        iv.send(msg(f"heidi@{DOMAIN}", "to-bare", "b1"))
        el, _ = hi.wait_for(is_msg, what="message at the priority-5 resource")
        assert body(el) == "to-bare" and el.get("from") == f"ivan@{DOMAIN}/i"
        assert el.get("to") == f"heidi@{DOMAIN}"
        assert not [e for e in lo.drain(0.5) if is_msg(e)], "priority-1 resource got it too"
        assert not [e for e in hi.drain(0.2) if is_msg(e)], "delivered twice"

        # Equal highest priority: both get it (RFC 6121 §8.5.2.1.1 allows it).
        lo.send(presence(5))
        hi.wait_for(lambda e: is_presence(e) and e.get("from") == f"heidi@{DOMAIN}/low")
        iv.send(msg(f"heidi@{DOMAIN}", "both", "b2"))
        for c in (hi, lo):
            el, _ = c.wait_for(is_msg)
            assert body(el) == "both"

        # Negative priorities only: no resource takes it (RFC 6121
        # §8.5.2.2), so it is stored offline (XEP-0160), not refused, and
        # comes once a resource has a non-negative priority again.
        hi.send(presence(-1))
        lo.send(presence(-5))
        hi.wait_for(lambda e: is_presence(e) and e.get("from") == f"heidi@{DOMAIN}/low")
        lo.wait_for(lambda e: is_presence(e) and e.get("from") == f"heidi@{DOMAIN}/high")
        iv.send(msg(f"heidi@{DOMAIN}", "nobody-home", "b3"))
        assert not [e for e in iv.drain(0.5) if is_msg(e)], "refused"
        assert not [e for e in hi.drain(0.3) + lo.drain(0.2) if is_msg(e)]
        hi.send(presence(0))
        el, _ = hi.wait_for(is_msg, what="the stored message")
        assert el.get("id") == "b3" and body(el) == "nobody-home"
        assert el.find("{urn:xmpp:delay}delay") is not None, ET.tostring(el)

        # An account that does not exist: service-unavailable (§8.5.1).
        iv.send(msg(f"nobody@{DOMAIN}", "offline", "b4"))
        el, _ = iv.wait_for(is_msg)
        assert el.get("id") == "b4" and stanza_error(el) == ("cancel", "service-unavailable")
    finally:
        for c in (hi, lo, iv):
            c.close()


# ---- 9. ping, disco, version -------------------------------------------------------------


def test_ping_disco_version(node):
    n = c2s_node(node)
    add_user(n, "ken", PW)
    add_user(n, "lena", PW)
    lena = login(n, "lena", PW, "l")
    with lena, login(n, "ken", PW, "k", how="starttls") as c:
        r = c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN)
        assert r.get("type") == "result" and r.get("from") == DOMAIN and len(r) == 0
        r = c.iq(f"<query xmlns='{NS_INFO}'/>", to=DOMAIN)
        assert r.get("type") == "result", ET.tostring(r)
        qe = r.find(q(NS_INFO, "query"))
        ids = [(i.get("category"), i.get("type")) for i in qe.findall(q(NS_INFO, "identity"))]
        assert ("server", "im") in ids, ids
        feats = {f.get("var") for f in qe.findall(q(NS_INFO, "feature"))}
        assert {NS_INFO, NS_ITEMS, NS_PING, NS_VERSION} <= feats, feats
        r = c.iq(f"<query xmlns='{NS_ITEMS}'/>", to=DOMAIN)
        assert r.get("type") == "result" and r.find(q(NS_ITEMS, "query")) is not None
        r = c.iq(f"<query xmlns='{NS_VERSION}'/>", to=DOMAIN)
        assert r.get("type") == "result", ET.tostring(r)
        v = r.find(q(NS_VERSION, "query"))
        assert v.find(q(NS_VERSION, "name")).text and v.find(q(NS_VERSION, "version")).text
        # disco of an account's bare JID (answered by the server on its
        # behalf, RFC 6121 §8.5.2.1.3): another online user's and one's own.
        # (An offline account: test_disco_offline_account.)
        for who in (f"lena@{DOMAIN}", f"ken@{DOMAIN}"):
            r = c.iq(f"<query xmlns='{NS_INFO}'/>", to=who)
            assert r.get("type") == "result" and r.get("from") == who, ET.tostring(r)
            qe = r.find(q(NS_INFO, "query"))
            ids = [(i.get("category"), i.get("type")) for i in qe.findall(q(NS_INFO, "identity"))]
            assert ("account", "registered") in ids, ids
            r = c.iq(f"<query xmlns='{NS_ITEMS}'/>", to=who)
            assert r.get("type") == "result" and r.find(q(NS_ITEMS, "query")) is not None
        # Ping of the own account without 'to' (RFC 6120 §10.3.3).
        r = c.iq(f"<ping xmlns='{NS_PING}'/>")
        assert r.get("type") == "result", ET.tostring(r)

    # The same through slixmpp's plugins (PLAIN over STARTTLS).
    lena = login(n, "lena", PW, "l")
    loop = new_loop()
    try:
        x = slix_client(loop, f"ken@{DOMAIN}/slix", PW, n.cert, mech="PLAIN",
                        plugins=["xep_0030", "xep_0092", "xep_0199"])

        async def run():
            await slix_start(x, n.xmpp["starttls"])
            await x["xep_0199"].ping(DOMAIN, timeout=10)
            info = await x["xep_0030"].get_info(jid=DOMAIN, timeout=10)
            assert NS_PING in info["disco_info"]["features"]
            items = await x["xep_0030"].get_items(jid=DOMAIN, timeout=10)
            assert items["type"] == "result"
            ver = await x["xep_0092"].get_version(DOMAIN, timeout=10)
            assert ver["software_version"]["name"]
            info = await x["xep_0030"].get_info(jid=f"lena@{DOMAIN}", timeout=10)
            assert ("account", "registered", None, None) in info["disco_info"]["identities"]
            await slix_stop(x)
        run_loop(loop, run(), 40)
    finally:
        close_loop(loop)
        lena.close()


def test_disco_offline_account(node):
    """RFC 6121 §8.5.2.2.3: an IQ to the bare JID of an account without a
    session is answered on its behalf as when it is online (else the answer
    would reveal presence); §8.5.1: no such account, service-unavailable."""
    n = c2s_node(node)
    add_user(n, "ken", PW)
    add_user(n, "lena", PW)
    with login(n, "ken", PW, "k") as c:
        r = c.iq(f"<query xmlns='{NS_INFO}'/>", to=f"lena@{DOMAIN}")
        assert r.get("type") == "result", ET.tostring(r)
        assert r.get("from") == f"lena@{DOMAIN}", ET.tostring(r)
        qe = r.find(q(NS_INFO, "query"))
        ids = [(i.get("category"), i.get("type")) for i in qe.findall(q(NS_INFO, "identity"))]
        assert ("account", "registered") in ids, ids
        r = c.iq(f"<query xmlns='{NS_ITEMS}'/>", to=f"lena@{DOMAIN}")
        assert r.get("type") == "result", ET.tostring(r)
        r = c.iq(f"<query xmlns='{NS_INFO}'/>", to=f"nobody@{DOMAIN}")
        assert stanza_error(r) == ("cancel", "service-unavailable"), ET.tostring(r)
        # The session keeps working after the storage round trips.
        assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"


# ---- 10. unknown payloads ----------------------------------------------------------------


def test_unknown_iq_service_unavailable(node):
    n = c2s_node(node)
    add_user(n, "mike", PW)
    with login(n, "mike", PW, "m") as c:
        for typ in ("get", "set"):
            r = c.iq("<query xmlns='urn:example:unknown'/>", to=DOMAIN, typ=typ)
            assert r.get("type") == "error", ET.tostring(r)
            assert stanza_error(r) == ("cancel", "service-unavailable"), ET.tostring(r)
        # An unknown payload to the own account as well.
        r = c.iq("<query xmlns='urn:example:unknown'/>", to=f"mike@{DOMAIN}")
        assert stanza_error(r) == ("cancel", "service-unavailable"), ET.tostring(r)
        # The stream still serves.
        r = c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN)
        assert r.get("type") == "result"


# ---- 11. restricted XML and stream errors --------------------------------------------------


HDR = STREAM_HEADER.format(to=DOMAIN)
AUTH_OPEN = f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"

BAD_INPUT = [
    ("doctype", "<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY x 'y'>]>" + HDR[21:],
     "restricted-xml"),
    ("comment", HDR + "<!-- a comment -->", "restricted-xml"),
    ("pi", HDR + "<?app instruction?>", "restricted-xml"),
    ("entity", HDR + AUTH_OPEN + "&foo;</auth>", "restricted-xml"),
    ("ill-formed", HDR + "<a><b></a>", "not-well-formed"),
    ("bad-attr", HDR + "<a x='1' x='2'/>", "not-well-formed"),
    ("stream-ns", "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
     "xmlns:stream='http://example.com/streams' to='localhost' version='1.0'>",
     "invalid-namespace"),
    ("oversized-preauth", HDR + AUTH_OPEN + "A" * 20000 + "</auth>", "policy-violation"),
    ("unknown-host", STREAM_HEADER.format(to="example.net"), "host-unknown"),
    ("no-version", "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
     "xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>", "unsupported-version"),
    ("stanza-before-auth", HDR + "<message to='x@localhost'><body>hi</body></message>",
     "not-authorized"),
    # More of the same classes.
    ("doctype-in-stream", HDR + "<!DOCTYPE x>", "restricted-xml"),
    ("entity-in-attr", HDR + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='&foo;'>"
     "=</auth>", "restricted-xml"),
    ("bad-utf8", HDR.encode() + b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
     b"mechanism='PLAIN'>\xff\xfe</auth>", "not-well-formed"),
    ("char-ref-nul", HDR + AUTH_OPEN + "&#0;</auth>", "not-well-formed"),
    ("unbound-prefix", HDR + "<foo:auth mechanism='PLAIN'>=</foo:auth>", "not-well-formed"),
    ("content-ns", "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
     "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
     "invalid-namespace"),
    ("encoding", "<?xml version='1.0' encoding='ISO-8859-1'?>" + HDR[21:],
     "unsupported-encoding"),
    ("too-deep", HDR + AUTH_OPEN + "<a>" * 100 + "</a>" * 100 + "</auth>", "policy-violation"),
    ("too-many-attrs", HDR + "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
     + " ".join(f"a{i}='1'" for i in range(100)) + "/>", "policy-violation"),
    ("response-without-auth", HDR + f"<response xmlns='{NS_SASL}'>=</response>",
     "not-authorized"),
]


def test_longest_domain(node):
    # A served domain may be a domainpart of up to 1023 bytes (RFC 7622
    # §3.2); the stream header that names it must come out whole.
    long_domain = ".".join(["d" * 63] * 15)  # 959 bytes
    n = c2s_node(node, start=False)
    lines = n.config.read_text().splitlines()
    i = next(i for i, ln in enumerate(lines) if f"domain: {DOMAIN}," in ln)
    # A second host with the same certificate, its domain as an operator
    # might write it: upper case, a final dot.
    lines.insert(i + 1, lines[i].replace(f"domain: {DOMAIN},",
                                         f"domain: \"{long_domain.upper()}.\","))
    text = "\n".join(lines) + "\n"
    n.write_config(text)
    n.start()
    with RawClient(n.xmpp["plain"]) as c:
        feats = c.open(to=long_domain)
        assert c.stream.get("from") == long_domain
        assert "PLAIN" in c.mechanisms(feats)
    with RawClient(n.xmpp["plain"]) as c:  # the other host still answers
        c.open()
        assert c.stream.get("from") == DOMAIN


def test_restricted_xml_and_stream_errors(node):
    n = c2s_node(node, limits={"max_stanza_bytes": 65536})
    add_user(n, "nina", PW)
    for name, data, cond in BAD_INPUT:
        with RawClient(n.xmpp["plain"]) as c:
            c.send(data)
            try:
                got = c.stream_error()
            except (StreamClosed, TimeoutError, ET.ParseError) as e:
                pytest.fail(f"{name}: no stream error ({e}); got {bytes(c.raw_in)[-300:]!r}")
            assert got == cond, f"{name}: {got}, want {cond}"
        # The node keeps serving: a fresh login.
        with login(n, "nina", PW, name) as c:
            assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"

    # After authentication the configured limit applies (here 64 KiB).
    with login(n, "nina", PW, "big") as c:
        text = "B" * 30000  # over the pre-auth 16 KiB, under 64 KiB
        c.send(msg(f"nina@{DOMAIN}/big", text, "big1"))
        el, _ = c.wait_for(is_msg, what="30 KB message to self")
        assert body(el) == text
        c.send(msg(f"nina@{DOMAIN}/big", "C" * 70000, "big2"))
        assert c.stream_error() == "policy-violation"
    with login(n, "nina", PW, "after") as c:
        assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"
    assert n.alive()


# ---- 12. 1,000 concurrent logins ------------------------------------------------------------


# batch_wait_us: with a batching window the reactors accept through a
# readiness poll and bursts of non-waiting accepts instead of a multishot
# accept; the burst of connections must all be taken either way.
@pytest.mark.parametrize("batch_wait_us", [0, 5000])
def test_thousand_concurrent_logins(node, batch_wait_us):
    count = 1000
    # All clients come from 127.0.0.1: lift the per-source backstop on
    # unauthenticated connections and the connection rate above the burst.
    n = c2s_node(node, limits={"max_unauth_per_source": 2 * count, "source_rate_per_sec": 0},
                 node_extra={"batch_wait_us": batch_wait_us})
    users = [(f"bulk{i:04d}", f"pw-{i}") for i in range(count)]
    import_users(n, users, iterations=1)
    loop = new_loop()
    clients = []
    try:
        async def run():
            t0 = time.monotonic()
            res = await asyncio.gather(
                *(async_login(n.xmpp["plain"], u, pw, "c") for u, pw in users),
                return_exceptions=True)
            errs = [r for r in res if isinstance(r, BaseException)]
            clients.extend(r[0] for r in res if not isinstance(r, BaseException))
            assert not errs, f"{len(errs)} logins failed, e.g. {errs[:3]!r}"
            jids = {r[1] for r in res}
            assert jids == {f"{u}@{DOMAIN}/c" for u, _ in users}
            return time.monotonic() - t0
        took = run_loop(loop, run(), 120)
        print(f"{count} concurrent logins in {took:.1f}s")
        c = n.clients()
        assert c["open"] == count, c

        # Each sends one message to the next: all delivered once, in time.
        async def ring():
            for i, cl in enumerate(clients):
                cl.w.write(msg(f"{users[(i + 1) % count][0]}@{DOMAIN}/c", f"ring-{i}",
                               f"r{i}").encode())

            async def recv(i, cl):
                el = await cl.next()
                assert is_msg(el) and body(el) == f"ring-{(i - 1) % count}", ET.tostring(el)
                assert el.get("from") == f"{users[(i - 1) % count][0]}@{DOMAIN}/c"
            await asyncio.gather(*(recv(i, cl) for i, cl in enumerate(clients)))
        run_loop(loop, ring(), 60)
        for cl in clients:
            cl.w.close()
        clients.clear()
        loop.run_until_complete(asyncio.sleep(0.1))
    finally:
        for cl in clients:
            cl.w.close()
        close_loop(loop)
    n.wait_idle(timeout=60)


# ---- 13. presence among own resources ------------------------------------------------------


def test_presence_own_resources(node):
    n = c2s_node(node)
    add_user(n, "olga", PW)
    a = login(n, "olga", PW, "a")
    b = login(n, "olga", PW, "b")
    c = None
    try:
        a.send(presence(1))
        # The sender gets its own presence back (RFC 6121 §4.2.2).
        el, _ = a.wait_for(is_presence)
        assert el.get("from") == f"olga@{DOMAIN}/a"
        # b is not available yet: nothing for it.
        assert not [e for e in b.drain(0.3) if is_presence(e)]
        b.send(presence(2))
        # a learns b's initial presence; b learns a's (siblings' presence).
        el, _ = a.wait_for(lambda e: is_presence(e) and e.get("from") == f"olga@{DOMAIN}/b")
        assert el.get("type") is None
        el, _ = b.wait_for(lambda e: is_presence(e) and e.get("from") == f"olga@{DOMAIN}/a")
        assert el.get("type") is None

        # A third resource that closes its socket without unavailable.
        c = login(n, "olga", PW, "c")
        c.send(presence(0))
        for x in (a, b):
            x.wait_for(lambda e: is_presence(e) and e.get("from") == f"olga@{DOMAIN}/c")
        c.sock.close()
        c = None
        for x in (a, b):
            el, _ = x.wait_for(lambda e: is_presence(e) and e.get("from") == f"olga@{DOMAIN}/c",
                               what="unavailable presence of the lost resource")
            assert el.get("type") == "unavailable", ET.tostring(el)

        # b ends its stream properly: a gets b's unavailable presence.
        b.close()
        el, _ = a.wait_for(lambda e: is_presence(e) and e.get("from") == f"olga@{DOMAIN}/b",
                           what="unavailable presence of b")
        assert el.get("type") == "unavailable", ET.tostring(el)
    finally:
        for x in (a, b, c):
            if x:
                x.close()


# ---- more of the stream machine ----------------------------------------------------------


def test_sasl_exchange_edges(node):
    n = c2s_node(node)
    add_user(n, "pat", PW)
    add_user(n, "quinn", PW)
    with RawClient(n.xmpp["plain"]) as c:
        c.open()
        # <abort/> in the middle of SCRAM (RFC 6120 §6.4.4).
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
               f"{b64(Scram('SCRAM-SHA-256', 'pat', PW).first())}</auth>")
        assert c.next().tag == q(NS_SASL, "challenge")
        c.send(f"<abort xmlns='{NS_SASL}'/>")
        el = c.expect(q(NS_SASL, "failure"))
        assert local(el[0].tag) == "aborted", ET.tostring(el)
        # Not base64: incorrect-encoding.
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>!!!!</auth>")
        el = c.expect(q(NS_SASL, "failure"))
        assert local(el[0].tag) == "incorrect-encoding", ET.tostring(el)
        # Authorization identity of somebody else: invalid-authzid.
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
               f"{b64(f'quinn@{DOMAIN}'.encode() + bytes(1) + b'pat' + bytes(1) + PW.encode())}"
               "</auth>")
        el = c.expect(q(NS_SASL, "failure"))
        assert local(el[0].tag) == "invalid-authzid", ET.tostring(el)
        # aborted, incorrect-encoding and invalid-authzid say nothing about
        # the password: they do not use up the retry budget (RFC 6120
        # §6.4.5), so the stream still takes a login.
        assert c.auth_plain("pat", PW).tag == q(NS_SASL, "success")
    with RawClient(n.xmpp["plain"]) as c:
        c.open()
        # One's own bare JID as authzid is fine; then bind.
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
               f"{b64(f'pat@{DOMAIN}'.encode() + bytes(1) + b'pat' + bytes(1) + PW.encode())}"
               "</auth>")
        assert c.next().tag == q(NS_SASL, "success")
        f = c.open()
        assert c.mechanisms(f) == [], "SASL offered again after success"
        # Server-generated resource (RFC 6120 §7.6).
        c.send(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'/></iq>")
        el = c.expect(q(NS_CLIENT, "iq"))
        jid = el.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}").text
        assert jid.startswith(f"pat@{DOMAIN}/") and len(jid) > len(f"pat@{DOMAIN}/"), jid


@pytest.mark.parametrize("cond", ["incorrect-encoding", "encryption-required"])
def test_other_sasl_failures_bounded(node, cond):
    # Failures that are not about the credentials have their own, larger
    # budget (SZ_C2S_MAX_SOFT_FAILURES, 16): a client cannot loop forever.
    n = c2s_node(node)
    port = n.xmpp["plain"] if cond == "incorrect-encoding" else n.xmpp["starttls"]
    data = "!!!!" if cond == "incorrect-encoding" else b64(bytes(1) + b"a" + bytes(1) + b"b")
    with RawClient(port, cafile=n.cert) as c:
        c.open()
        for _ in range(16):
            c.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{data}</auth>")
            el = c.expect(q(NS_SASL, "failure"))
            assert local(el[0].tag) == cond, ET.tostring(el)
        assert c.stream_error(timeout=3) == "policy-violation"


def test_stream_errors_after_auth(node):
    n = c2s_node(node)
    add_user(n, "rita", PW)
    add_user(n, "sam", PW)
    cases = [
        # RFC 6120 §8.1.2.1: a 'from' naming somebody else.
        ("plain", f"<message from='sam@{DOMAIN}/x' to='rita@{DOMAIN}'><body>x</body></message>",
         "invalid-from"),
        ("plain", "<foo/>", "unsupported-stanza-type"),
        ("plain", f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>=</auth>",
         "unsupported-stanza-type"),
        ("direct", "<!-- a comment -->", "restricted-xml"),
        ("starttls", "<message><body>&foo;</body></message>", "restricted-xml"),
        ("starttls", "<a></b>", "not-well-formed"),
    ]
    for how, data, cond in cases:
        with login(n, "rita", PW, "r", how=how) as c:
            c.send(data)
            assert c.stream_error() == cond, (how, data)
        with login(n, "rita", PW, "again", how=how) as c:
            assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"
    # Stanza errors leave the stream open.
    with login(n, "rita", PW, "r") as c:
        r = c.iq(f"<ping xmlns='{NS_PING}'/><ping xmlns='{NS_PING}'/>", to=DOMAIN)
        assert stanza_error(r) == ("modify", "bad-request"), ET.tostring(r)
        r = c.iq(f"<ping xmlns='{NS_PING}'/>", to="a@b@c")
        assert stanza_error(r) == ("modify", "jid-malformed"), ET.tostring(r)
        # No server-to-server: a remote domain is not reachable.
        r = c.iq(f"<ping xmlns='{NS_PING}'/>", to="example.com")
        assert stanza_error(r) == ("cancel", "remote-server-not-found"), ET.tostring(r)
        # An IQ to a full JID that is not online (RFC 6121 §8.5.3.2.3).
        r = c.iq(f"<ping xmlns='{NS_PING}'/>", to=f"sam@{DOMAIN}/none")
        assert stanza_error(r) == ("cancel", "service-unavailable"), ET.tostring(r)
        assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"


def test_starttls_drops_pipelined_plaintext(node):
    n = c2s_node(node)
    add_user(n, "tom", PW)
    with RawClient(n.xmpp["starttls"], cafile=n.cert) as c:
        c.open()
        # Plaintext pipelined after <starttls/> must not be acted on (nor be
        # taken for the ClientHello): the handshake and a new stream work.
        c.send(f"<starttls xmlns='{NS_TLS}'/><auth xmlns='{NS_SASL}' mechanism='PLAIN'>"
               f"{b64(bytes(1) + b'tom' + bytes(1) + PW.encode())}</auth>")
        c.expect(q(NS_TLS, "proceed"))
        c._wrap()
        f = c.open()
        assert "SCRAM-SHA-256-PLUS" in c.mechanisms(f)
        assert not c.drain(0.2), "the injected <auth> was answered"
        assert c.auth_plain("tom", PW).tag == q(NS_SASL, "success")
        assert c.bind("t") == f"tom@{DOMAIN}/t"


@pytest.mark.parametrize("batch_wait_us", [0, 5000])
def test_preauth_timeout(node, batch_wait_us):
    # Timers fire on time with or without a batching window.
    n = c2s_node(node, limits={"preauth_timeout_ms": 1000},
                 node_extra={"batch_wait_us": batch_wait_us})
    add_user(n, "uma", PW)
    t0 = time.monotonic()
    with RawClient(n.xmpp["plain"]) as c:
        c.open()
        assert c.stream_error(timeout=10) == "connection-timeout"
    assert 0.8 < time.monotonic() - t0 < 8
    # Authenticated but never bound: the same deadline.
    with RawClient(n.xmpp["plain"]) as c:
        c.open()
        assert c.auth_plain("uma", PW).tag == q(NS_SASL, "success")
        c.open()
        assert c.stream_error(timeout=10) == "connection-timeout"
    # A Direct TLS connection that never starts its handshake is closed.
    with RawClient(n.xmpp["direct"]) as c:
        c.sock.settimeout(10)
        assert c.sock.recv(100) == b""
    # Bound sessions are not subject to it.
    with login(n, "uma", PW, "r") as c:
        time.sleep(1.5)
        assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"


def test_batching_reactor_sleeps_when_idle(node):
    # The kernel's minimum wait ends a wait that has no timeout even when
    # nothing happened; an idle reactor must not wake every window for it.
    n = c2s_node(node, node_extra={"batch_wait_us": 5000})
    add_user(n, "ida", PW)
    with login(n, "ida", PW, "r") as c:  # a session, and its timers, exist
        def loops():
            return per_reactor(n.metrics(), "stanzad_loop_iterations_total")
        before = loops()
        time.sleep(1.0)
        after = loops()
        # 5 ms windows would be 200 wake-ups per second; serving /metrics
        # and the wheel's cascades cost a handful.
        assert all(after[r] - before[r] < 40 for r in before), (before, after)
        # And it still wakes for the next stanza.
        assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"


def test_slow_reader_costs_only_itself(node):
    n = c2s_node(node, limits={"max_output_bytes": 65536})
    add_user(n, "vera", PW)
    add_user(n, "walt", PW)
    for how in ("plain", "direct"):
        slow = login(n, "vera", PW, "slow", how=how)
        fast = login(n, "walt", PW, "fast")
        try:
            before = msum(n.metrics(), "stanzad_output_overflow_total")
            text = "x" * 4000
            for i in range(4000):  # at most 16 MB; stops at the first overflow
                fast.send(msg(f"vera@{DOMAIN}/slow", text, f"s{i}"))
                if i % 50 == 49 and \
                        msum(n.metrics(), "stanzad_output_overflow_total") > before:
                    break
            assert msum(n.metrics(), "stanzad_output_overflow_total") == before + 1
            # The sender is still served.
            assert fast.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"
            # The slow one finds policy-violation after what was queued.
            assert slow.stream_error(timeout=20) == "policy-violation"
        finally:
            slow.close()
            fast.close()


def test_shutdown_with_clients(node):
    n = c2s_node(node)
    add_user(n, "xena", PW)
    clients = [login(n, "xena", PW, how, how=how) for how in ("plain", "starttls", "direct")]
    pre = RawClient(n.xmpp["plain"])
    pre.open()
    try:
        n.signal(signal.SIGTERM)
        for c in clients + [pre]:
            assert c.stream_error(timeout=15) == "system-shutdown"
            c.close()
        n.proc.wait(30)
        n.stop_clean()
    finally:
        for c in clients + [pre]:
            c.close()
