"""Logins as real clients make them, against a node with the DEFAULT
config (only ports, host and certificate are set): Debian's slixmpp 1.8.3
with its default settings over STARTTLS on TLS 1.3 and 1.2 and over Direct
TLS, slixmpp limited to SCRAM-SHA-1; SCRAM -PLUS with every channel-binding
type (tls-unique on TLS 1.2 and, as OpenSSL clients compute it, on TLS
1.3; tls-server-end-point; tls-exporter through stanza-bench, since
Python's ssl has no exporter); the failure budget (only credential
failures count); tls.unique_on_tls13 turned off; and the per-source
limits: 200 concurrent logins from one address, a login beside 40 stalled
connections from the same address, the first-bytes deadline and the
connection rate.

slixmpp's SCRAM knows only tls-unique, which it takes from Python's
ssl.SSLSocket.get_channel_binding("tls-unique"): OpenSSL's own Finished
message of the handshake (the client's), on TLS 1.3 as on TLS 1.2.
"""

import asyncio
import hashlib
import json
import signal
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import assert_sanitizer_clean, msum, sanitizer_env, stanzad_path
from xmpp_util import (DOMAIN, NS_SASL, STREAM_HEADER, RawClient, add_user, async_login,
                       c2s_node, import_users, local, login, q)

PW = "interop-Secret-1"
NS_CB = "urn:xmpp:sasl-cb:0"

BOUNDS = {"test_two_hundred_concurrent_logins": 180}
DEFAULT_BOUND = 120


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


def with_tls_section(n, text):
    """Appends a tls: section to <n>'s config (c2s_node writes the rest)."""
    n.write_config(n.config.read_text() + "tls:\n" + text)


# ---- slixmpp ----------------------------------------------------------------------


def slix_login(n, port, user, password=PW, use_ssl=False, tls_max=None, mech=None,
               starttls=True, timeout=40):
    """One slixmpp 1.8.3 client with its defaults (unless <mech> or
    <tls_max> say otherwise) logs in, binds, pings the server and
    disconnects. Returns {'ok', 'mech', 'failures' [(condition, text)],
    'tls', 'jid'}; 'ok' is False when slixmpp gave up (failed_all_auth)."""
    import slixmpp

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    res = {"ok": False, "mech": None, "failures": [], "tls": None, "jid": None}
    try:
        x = slixmpp.ClientXMPP(f"{user}@{DOMAIN}/slix", password, sasl_mech=mech)
        x.loop = loop
        x.ca_certs = Path(n.cert)
        x.register_plugin("xep_0199")
        if tls_max is not None:
            x.ssl_context.maximum_version = tls_max
        done = loop.create_future()

        def finish(ok):
            if not done.done():
                done.set_result(ok)

        def failed(stanza):
            text = stanza.xml.find(q(NS_SASL, "text"))
            res["failures"].append((stanza["condition"], text.text if text is not None else None))

        async def started(_):
            res["mech"] = x["feature_mechanisms"].mech.name
            res["jid"] = str(x.boundjid)
            sock = x.socket
            res["tls"] = sock.version() if isinstance(sock, (ssl.SSLObject, ssl.SSLSocket)) \
                else None
            await x["xep_0199"].ping(DOMAIN, timeout=10)
            finish(True)

        x.add_event_handler("session_start", started)
        x.add_event_handler("failed_auth", failed)
        x.add_event_handler("failed_all_auth", lambda _: finish(False))
        x.add_event_handler("disconnected", lambda _: finish(False))
        x.add_event_handler("connection_failed", lambda _: finish(False))
        x.connect(("127.0.0.1", port), use_ssl=use_ssl, force_starttls=starttls and not use_ssl,
                  disable_starttls=not starttls)
        res["ok"] = loop.run_until_complete(asyncio.wait_for(done, timeout))
        try:
            loop.run_until_complete(asyncio.wait_for(x.disconnect(wait=2.0), 10))
        except (asyncio.TimeoutError, Exception):
            x.abort()
    finally:
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=5))
        loop.close()
        asyncio.set_event_loop(None)
    return res


def test_slixmpp_default_starttls_tls13(node):
    # slixmpp's default: SCRAM-SHA-512-PLUS first, gs2 header p=tls-unique
    # with the client's TLS 1.3 Finished, accepted with the default
    # tls.unique_on_tls13: true, at the first attempt.
    n = c2s_node(node)
    add_user(n, "amy", PW)
    r = slix_login(n, n.xmpp["starttls"], "amy")
    assert r["ok"], r
    assert r["tls"] == "TLSv1.3", r
    assert r["mech"] == "SCRAM-SHA-512-PLUS", r
    assert r["failures"] == [], r
    assert r["jid"] == f"amy@{DOMAIN}/slix"


def test_slixmpp_default_starttls_tls12(node):
    # TLS 1.2 (the client capped): tls-unique as RFC 5929 defines it.
    n = c2s_node(node)
    add_user(n, "ben", PW)
    r = slix_login(n, n.xmpp["starttls"], "ben", tls_max=ssl.TLSVersion.TLSv1_2)
    assert r["ok"], r
    assert r["tls"] == "TLSv1.2", r
    assert r["mech"] == "SCRAM-SHA-512-PLUS" and r["failures"] == [], r


def test_slixmpp_default_direct_tls(node):
    # XEP-0368 Direct TLS (slixmpp 1.8.3: connect(use_ssl=True)).
    n = c2s_node(node)
    add_user(n, "cid", PW)
    r = slix_login(n, n.xmpp["direct"], "cid", use_ssl=True)
    assert r["ok"], r
    assert r["tls"] == "TLSv1.3" and r["mech"] == "SCRAM-SHA-512-PLUS" and r["failures"] == [], r
    r = slix_login(n, n.xmpp["direct"], "cid", use_ssl=True, tls_max=ssl.TLSVersion.TLSv1_2)
    assert r["ok"] and r["tls"] == "TLSv1.2" and r["failures"] == [], r


def test_slixmpp_scram_sha1(node):
    n = c2s_node(node)
    add_user(n, "dee", PW)
    # Over TLS, limited to SCRAM-SHA-1, slixmpp sends gs2 flag "y" (it could
    # bind, it thinks we cannot). By default SCRAM-SHA-1-PLUS is not
    # offered, so for the SHA-1 family the server indeed cannot bind and
    # RFC 5802 §6 lets the exchange go on: the login works, on TLS 1.3 and
    # 1.2, over STARTTLS and Direct TLS.
    for port, ssl_ in ((n.xmpp["starttls"], False), (n.xmpp["direct"], True)):
        for tls_max in (None, ssl.TLSVersion.TLSv1_2):
            r = slix_login(n, port, "dee", mech="SCRAM-SHA-1", use_ssl=ssl_, tls_max=tls_max)
            assert r["ok"] and r["mech"] == "SCRAM-SHA-1" and r["failures"] == [], r
            assert r["tls"] == ("TLSv1.2" if tls_max else "TLSv1.3"), r
    # The -PLUS variant is not there to ask for.
    r = slix_login(n, n.xmpp["starttls"], "dee", mech="SCRAM-SHA-1-PLUS")
    assert not r["ok"], r
    # Without TLS (no binding to offer: flag "n"), on a listener with tls: none.
    r = slix_login(n, n.xmpp["plain"], "dee", mech="SCRAM-SHA-1", starttls=False)
    assert r["ok"] and r["mech"] == "SCRAM-SHA-1" and r["tls"] is None and r["failures"] == [], r


def test_scram_sha1_plus_on(node):
    # tls.scram_sha1_plus: true offers SCRAM-SHA-1-PLUS; then "y" with
    # SCRAM-SHA-1 is a downgrade the server refuses (RFC 5802 §6), with the
    # SCRAM server-error in <text/>, and SCRAM-SHA-1-PLUS logs in.
    n = c2s_node(node, start=False)
    with_tls_section(n, "  scram_sha1_plus: true\n")
    n.start()
    add_user(n, "dee", PW)
    r = slix_login(n, n.xmpp["starttls"], "dee", mech="SCRAM-SHA-1")
    assert not r["ok"], r
    assert r["failures"] == [("not-authorized", "e=server-does-support-channel-binding")], r
    r = slix_login(n, n.xmpp["starttls"], "dee", mech="SCRAM-SHA-1-PLUS")
    assert r["ok"] and r["mech"] == "SCRAM-SHA-1-PLUS" and r["failures"] == [], r


# ---- every channel-binding type ------------------------------------------------------


def raw_tls(n, how, tls_max=None):
    """A RawClient after TLS (STARTTLS or Direct), the certificate checked,
    optionally capped at <tls_max>; returns (client, features)."""
    ctx = ssl.create_default_context(cafile=str(n.cert))
    if tls_max is not None:
        ctx.maximum_version = tls_max
    c = RawClient(n.xmpp[how], cafile=n.cert)
    if how == "starttls":
        c.open()
        c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        c.expect("{urn:ietf:params:xml:ns:xmpp-tls}proceed")
    c.sock = ctx.wrap_socket(c.sock, server_hostname=DOMAIN)
    c.tls = True
    return c, c.open()


def cb_types(features):
    el = features.find(q(NS_CB, "sasl-channel-binding"))
    return {e.get("type") for e in el} if el is not None else set()


@pytest.mark.parametrize("how", ["starttls", "direct"])
def test_scram_plus_every_binding(node, how):
    n = c2s_node(node)
    add_user(n, "eve", PW)
    for tls_max, version in ((None, "TLSv1.3"), (ssl.TLSVersion.TLSv1_2, "TLSv1.2")):
        c, f = raw_tls(n, how, tls_max)
        with c:
            assert c.sock.version() == version
            types = cb_types(f)
            if version == "TLSv1.3":
                # tls-unique is accepted on TLS 1.3 but never advertised
                # (RFC 9266 §1: not defined there).
                assert types == {"tls-exporter", "tls-server-end-point"}, types
            else:
                assert types == {"tls-unique", "tls-server-end-point"}, types
            unique = c.sock.get_channel_binding("tls-unique")
            el, verified = c.auth_scram("SCRAM-SHA-256-PLUS", "eve", PW, cb=("tls-unique", unique))
            assert el.tag == q(NS_SASL, "success") and verified, ET.tostring(el)
            assert c.bind("u") == f"eve@{DOMAIN}/u"
        c, f = raw_tls(n, how, tls_max)
        with c:
            ep = hashlib.sha256(c.sock.getpeercert(binary_form=True)).digest()
            # Wrong tls-unique data first: channel-bindings-dont-match, which
            # does not use up the retry budget.
            bad = bytearray(c.sock.get_channel_binding("tls-unique"))
            bad[0] ^= 1
            for _ in range(3):
                el, _ = c.auth_scram("SCRAM-SHA-512-PLUS", "eve", PW, cb=("tls-unique", bytes(bad)))
                assert el.tag == q(NS_SASL, "failure"), ET.tostring(el)
                assert local(el[0].tag) == "not-authorized", ET.tostring(el)
                assert el.find(q(NS_SASL, "text")).text == "e=channel-bindings-dont-match"
            el, verified = c.auth_scram("SCRAM-SHA-256-PLUS", "eve", PW,
                                        cb=("tls-server-end-point", ep))
            assert el.tag == q(NS_SASL, "success") and verified, ET.tostring(el)
        if version == "TLSv1.2":
            # tls-exporter is TLS 1.3 only (RFC 9266 §3).
            c, f = raw_tls(n, how, tls_max)
            with c:
                el, _ = c.auth_scram("SCRAM-SHA-256-PLUS", "eve", PW,
                                     cb=("tls-exporter", b"\0" * 32))
                assert el.tag == q(NS_SASL, "failure"), ET.tostring(el)
                assert el.find(q(NS_SASL, "text")).text == "e=unsupported-channel-binding-type"


def bench_tool(name):
    p = Path(stanzad_path()).parent / name
    if not p.exists():
        pytest.skip(f"{p} was not built")
    return str(p)


def test_scram_plus_tls_exporter_stanza_bench(node):
    # Python's ssl cannot export keying material: the project's load tool
    # speaks SCRAM-SHA-256-PLUS with tls-exporter (RFC 9266).
    n = c2s_node(node)
    sb = bench_tool("bench/stanza-bench")
    r = subprocess.run([sb, "provision", "--stanzactl", bench_tool("stanzactl"), "--config",
                        str(n.config), "--users", "3", "--iterations", "1"],
                       capture_output=True, text=True, timeout=120, env=sanitizer_env())
    assert r.returncode == 0, r.stdout + r.stderr
    for port, mode in ((n.xmpp["starttls"], "starttls"), (n.xmpp["direct"], "direct")):
        out = n.dir / f"exporter-{mode}.json"
        r = subprocess.run([sb, "connect", "--port", str(port), "--tls", mode, "--ca", str(n.cert),
                            "--mech", "SCRAM-SHA-256-PLUS", "--users", "3", "--login-rate", "100",
                            "--duration", "0", "--json", str(out), "--quiet"],
                           capture_output=True, text=True, timeout=120, env=sanitizer_env())
        assert_sanitizer_clean(r.stderr, "stanza-bench")
        assert r.returncode == 0, r.stdout + r.stderr
        rep = json.loads(out.read_text())
        assert rep["mechanism"] == "SCRAM-SHA-256-PLUS" and rep["tls_version"] == "1.3", rep
        lg = rep["logins"]
        assert lg["online"] == 3 and lg["failed"] == 0 and lg["dropped"] == 0, lg
        assert rep["errors"]["total"] == 0, rep["errors"]


# ---- tls.unique_on_tls13: false ---------------------------------------------------------


def test_unique_on_tls13_off(node):
    n = c2s_node(node, start=False)
    with_tls_section(n, "  unique_on_tls13: false\n")
    n.start()
    add_user(n, "fay", PW)
    c, f = raw_tls(n, "starttls")
    with c:
        assert c.sock.version() == "TLSv1.3"
        unique = c.sock.get_channel_binding("tls-unique")
        el, _ = c.auth_scram("SCRAM-SHA-256-PLUS", "fay", PW, cb=("tls-unique", unique))
        # RFC 5802 §7 server-error, carried in <text/> (RFC 6120 §6.4.5).
        assert el.tag == q(NS_SASL, "failure") and local(el[0].tag) == "not-authorized", \
            ET.tostring(el)
        assert el.find(q(NS_SASL, "text")).text == "e=unsupported-channel-binding-type"
    # TLS 1.2's tls-unique is unaffected.
    c, f = raw_tls(n, "starttls", ssl.TLSVersion.TLSv1_2)
    with c:
        unique = c.sock.get_channel_binding("tls-unique")
        el, ok = c.auth_scram("SCRAM-SHA-256-PLUS", "fay", PW, cb=("tls-unique", unique))
        assert el.tag == q(NS_SASL, "success") and ok, ET.tostring(el)
    # slixmpp's defaults on TLS 1.3: its two -PLUS attempts (SHA-512,
    # SHA-256) fail (unsupported type), then SCRAM-SHA-512 and -256 with "y"
    # (a downgrade, their -PLUS being offered: refused), then SCRAM-SHA-1
    # with "y", which is honest since SCRAM-SHA-1-PLUS is not offered: it
    # succeeds. None of those four failures is about the password, so none
    # used up the retry budget.
    r = slix_login(n, n.xmpp["starttls"], "fay")
    assert r["ok"], r
    assert r["mech"] == "SCRAM-SHA-1", r
    conds = [t for _, t in r["failures"]]
    assert conds == ["e=unsupported-channel-binding-type"] * 2 + \
        ["e=server-does-support-channel-binding"] * 2, r


# ---- the failure budget ------------------------------------------------------------------


def test_failure_budget(node):
    n = c2s_node(node)
    add_user(n, "gus", PW)
    c, f = raw_tls(n, "starttls")
    with c:
        # Negotiation failures, well over three: the mechanism, TLS policy
        # aside, channel-binding types, a downgrade.
        c.send(f"<auth xmlns='{NS_SASL}' mechanism='DIGEST-MD5'/>")
        assert local(c.expect(q(NS_SASL, "failure"))[0].tag) == "invalid-mechanism"
        for mech in ("SCRAM-SHA-512-PLUS", "SCRAM-SHA-256-PLUS") * 2:
            el, _ = c.auth_scram(mech, "gus", PW, cb=("tls-foo", b"x"))
            assert el.find(q(NS_SASL, "text")).text == "e=unsupported-channel-binding-type"
        el, _ = c.auth_scram("SCRAM-SHA-256", "gus", PW, flag="y")
        assert el.find(q(NS_SASL, "text")).text == "e=server-does-support-channel-binding"
        # Two wrong passwords: still under the budget of three ...
        for _ in range(2):
            el, _ = c.auth_scram("SCRAM-SHA-256", "gus", "wrong")
            assert local(el[0].tag) == "not-authorized" and el.find(q(NS_SASL, "text")) is None
        # ... so the right one logs in.
        el, ok = c.auth_scram("SCRAM-SHA-256", "gus", PW)
        assert el.tag == q(NS_SASL, "success") and ok, ET.tostring(el)
    # Three wrong passwords end the stream (RFC 6120 §6.4.5).
    c, f = raw_tls(n, "starttls")
    with c:
        for _ in range(3):
            el = c.auth_plain("gus", "wrong")
            assert local(el[0].tag) == "not-authorized"
        assert c.stream_error() == "policy-violation"


# ---- per-source limits (policy; RFC 6120 has none) ------------------------------------------


def test_two_hundred_concurrent_logins(node):
    # Carrier-grade NAT: 200 users behind one address log in at once,
    # with the default limits.
    count = 200
    n = c2s_node(node)
    users = [(f"nat{i:03d}", f"pw-{i}") for i in range(count)]
    import_users(n, users, iterations=1)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    clients = []
    try:
        async def run():
            t0 = time.monotonic()
            res = await asyncio.gather(
                *(async_login(n.xmpp["plain"], u, pw, "c") for u, pw in users),
                return_exceptions=True)
            clients.extend(r[0] for r in res if not isinstance(r, BaseException))
            errs = [r for r in res if isinstance(r, BaseException)]
            assert not errs, f"{len(errs)} of {count} logins failed, e.g. {errs[:3]!r}"
            return time.monotonic() - t0
        took = loop.run_until_complete(asyncio.wait_for(run(), 120))
        print(f"{count} concurrent logins from one address in {took:.1f}s")
        m = n.metrics()
        assert msum(m, "stanzad_connections_source_limited_total") == 0
        assert msum(m, "stanzad_connections_source_rate_limited_total") == 0
    finally:
        for cl in clients:
            cl.w.close()
        loop.run_until_complete(asyncio.sleep(0.1))
        loop.close()
        asyncio.set_event_loop(None)
    n.wait_idle(timeout=60)


def test_stalled_connections_do_not_delay_login(node):
    n = c2s_node(node)
    add_user(n, "hal", PW)
    stalled = []
    try:
        # 40 from 127.0.0.1: half connect and send nothing, half send a
        # stream header and stall; on the plaintext and the STARTTLS
        # listeners.
        for i in range(40):
            port = n.xmpp["plain"] if i % 2 else n.xmpp["starttls"]
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if i >= 20:
                s.sendall(STREAM_HEADER.format(to=DOMAIN).encode())
            stalled.append(s)
        time.sleep(0.3)
        for how in ("plain", "starttls"):
            t0 = time.monotonic()
            c = login(n, "hal", PW, how, timeout=5)
            took = time.monotonic() - t0
            c.close()
            assert took < 2.0, f"{how} login beside 40 stalled connections took {took:.2f}s"
        # The stalled ones are all still there (nothing refused them).
        m = n.metrics()
        assert msum(m, "stanzad_connections_source_limited_total") == 0
        assert msum(m, "stanzad_connections_source_rate_limited_total") == 0
    finally:
        for s in stalled:
            s.close()


def test_handshake_deadline(node):
    # limits.handshake_timeout_ms ends connections that never get to a
    # stream header (silent, or stalled in TLS) long before
    # limits.preauth_timeout_ms, which a client that spoke keeps.
    n = c2s_node(node, limits={"handshake_timeout_ms": 1000, "preauth_timeout_ms": 6000})
    silent = socket.create_connection(("127.0.0.1", n.xmpp["plain"]), timeout=10)
    direct = socket.create_connection(("127.0.0.1", n.xmpp["direct"]), timeout=10)
    spoke = RawClient(n.xmpp["plain"], timeout=10)
    spoke.open()
    tls = RawClient(n.xmpp["starttls"], timeout=10)
    tls.open()
    tls.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    tls.expect("{urn:ietf:params:xml:ns:xmpp-tls}proceed")
    t0 = time.monotonic()
    try:
        # Closed after about a second: no header yet, no TLS handshake
        # (Direct TLS), no TLS handshake after <proceed/>.
        for s in (silent, direct, tls.sock):
            s.settimeout(8)
            data = s.recv(4096)
            while data:
                data = s.recv(4096)
        assert time.monotonic() - t0 < 4
        m = n.metrics()
        assert msum(m, "stanzad_handshake_timeouts_total") == 3
        # The one that spoke is still open past that, until the pre-auth
        # deadline.
        time.sleep(max(0.0, 1.5 - (time.monotonic() - t0)))
        assert spoke.stream_error(timeout=10) == "connection-timeout"
        assert 4 < time.monotonic() - t0 < 10
        assert msum(n.metrics(), "stanzad_handshake_timeouts_total") == 3
    finally:
        for s in (silent, direct):
            s.close()
        spoke.close()
        tls.close()


def test_connection_rate(node):
    # limits.source_rate_per_sec / source_burst: a token bucket per address.
    n = c2s_node(node, limits={"source_rate_per_sec": 1, "source_burst": 5})
    add_user(n, "ida", PW)
    held = []
    try:
        for _ in range(5):
            c = RawClient(n.xmpp["plain"], timeout=5)
            c.open()
            held.append(c)
        c = RawClient(n.xmpp["plain"], timeout=5)
        held.append(c)
        assert c.stream_error() == "policy-violation"
        m = n.metrics()
        assert msum(m, "stanzad_connections_source_rate_limited_total") == 1
        assert msum(m, "stanzad_connections_source_limited_total") == 0
        # The tokens come back at the configured rate.
        time.sleep(1.2)
        c = login(n, "ida", PW, "plain", timeout=5)
        held.append(c)
    finally:
        for c in held:
            c.close()
