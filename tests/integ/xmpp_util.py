"""XMPP client helpers for the c2s integration tests (test_c2s.py).

Built on conftest's Node: c2s_node() writes a config with a self-signed
certificate for 'localhost' and the four client listeners, and starts it.
RawClient is a blocking client over a plain or TLS socket that parses the
server's stream with ElementTree's pull parser (SASL PLAIN and SCRAM with
channel binding done by hand, RFC 5802); async_login() is the asyncio
version of a PLAIN login for many concurrent clients.
"""

import asyncio
import base64
import hashlib
import hmac
import os
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import deque
from pathlib import Path

import pytest

from conftest import Node, assert_sanitizer_clean, free_ports, sanitizer_env, stanzad_path

DOMAIN = "localhost"
NS_CLIENT = "jabber:client"
NS_STREAM = "http://etherx.jabber.org/streams"
NS_STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"

STREAM_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                 "xmlns:stream='http://etherx.jabber.org/streams' to='{to}' version='1.0'>")


def q(ns, name):
    return "{%s}%s" % (ns, name)


def local(tag):
    return tag.rpartition("}")[2]


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


# ---- certificate, accounts, node ------------------------------------------


def make_cert(d):
    """Self-signed P-256 certificate for CN/SAN localhost (ECDSA-SHA256)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "localhost.pem", d / "localhost.key"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost", "-days", "2", "-sha256",
             "-keyout", str(key), "-out", str(cert)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    return cert, key


def stanzactl_path():
    p = Path(stanzad_path()).parent / "stanzactl"
    if not p.exists():
        pytest.skip(f"{p} was not built")
    return str(p)


def stanzactl(cfg, *args, timeout=180):
    p = subprocess.run([stanzactl_path(), "--config", str(cfg), *args],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=sanitizer_env(), timeout=timeout)
    err = p.stderr.decode(errors="replace")
    assert_sanitizer_clean(err, "stanzactl")
    assert p.returncode == 0, f"stanzactl {' '.join(args)} exited {p.returncode}: {err}"
    return p.stdout.decode(errors="replace")


def add_user(n, user, password):
    pf = n.dir / f"pw-{user}"
    pf.write_text(password + "\n")
    stanzactl(n.config, "adduser", f"{user}@{DOMAIN}", "--password-file", str(pf))
    pf.unlink()


def import_users(n, pairs, iterations=1):
    f = n.dir / "import.txt"
    f.write_text("".join(f"{u}@{DOMAIN} {pw}\n" for u, pw in pairs))
    stanzactl(n.config, "import-users", str(f), "--iterations", str(iterations))
    f.unlink()


def c2s_node(make, reactors=2, limits=None, log_level="info", start=True, node_extra=None):
    """Starts a node through conftest's factory <make> with listeners:
    admin; c2s starttls-required (ports['starttls']); c2s tls none with
    plain_without_tls ('plain'); c2s tls none without it ('noplain');
    c2s-tls ('direct'). Sets n.xmpp (those ports) and n.cert. <node_extra>
    adds keys to the config's node section."""
    pa, p1, p2, p3, p4 = free_ports(5)
    n = make(start=False, reactors=reactors, limits=limits, log_level=log_level,
             listeners=[("admin", pa), ("c2s", p1), ("c2s", p2), ("c2s", p3), ("c2s-tls", p4)])
    assert isinstance(n, Node)
    cert, key = make_cert(n.dir / "tls")
    n.cert = cert
    n.xmpp = {"starttls": p1, "plain": p2, "noplain": p3, "direct": p4}
    lines = ["node:", f"  reactors: {reactors}", f"  log_level: {log_level}",
             *(f"  {k}: {v}" for k, v in (node_extra or {}).items()),
             "hosts:", f"  - {{ domain: {DOMAIN}, tls_cert: {cert}, tls_key: {key} }}",
             "listen:",
             f"  - {{ kind: admin, address: 127.0.0.1, port: {pa} }}",
             f"  - {{ kind: c2s, address: 127.0.0.1, port: {p1}, tls: starttls-required }}",
             f"  - {{ kind: c2s, address: 127.0.0.1, port: {p2}, tls: none, "
             "plain_without_tls: true }",
             f"  - {{ kind: c2s, address: 127.0.0.1, port: {p3}, tls: none }}",
             f"  - {{ kind: c2s-tls, address: 127.0.0.1, port: {p4} }}",
             "storage:", f"  path: {n.dir / 'data.db'}"]
    if limits:
        lines.append("limits:")
        lines += [f"  {k}: {v}" for k, v in limits.items()]
    n.write_config("\n".join(lines) + "\n")
    if start:
        n.start()
    return n


# ---- SCRAM (RFC 5802) --------------------------------------------------------

HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


def b64(b):
    return base64.b64encode(b).decode()


def plain_ir(user, password):
    return b64(b"\0" + user.encode() + b"\0" + password.encode())


def saslname(s):
    return s.replace("=", "=3D").replace(",", "=2C")


class Scram:
    """Client side of one SCRAM exchange. <cb> is (type, data) for -PLUS;
    <flag> overrides the gs2 flag ('n' or 'y') of a non-PLUS exchange."""

    def __init__(self, mech, user, password, cb=None, flag="n"):
        base = mech[:-5] if mech.endswith("-PLUS") else mech
        self.h = HASHES[base]
        self.user, self.password = user, password
        self.cb = cb
        self.gs2 = (f"p={cb[0]},," if cb else f"{flag},,").encode()
        self.cnonce = b64(os.urandom(18))
        self.first_bare = f"n={saslname(user)},r={self.cnonce}"

    def first(self):
        return self.gs2 + self.first_bare.encode()

    def final(self, server_first):
        sf = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in sf.split(","))
        nonce, salt, it = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.cnonce) and len(nonce) > len(self.cnonce), sf
        salted = hashlib.pbkdf2_hmac(self.h, self.password.encode(), salt, it)
        ck = hmac.new(salted, b"Client Key", self.h).digest()
        sk = hashlib.new(self.h, ck).digest()
        cbdata = self.cb[1] if self.cb else b""
        wo = f"c={b64(self.gs2 + cbdata)},r={nonce}"
        auth = f"{self.first_bare},{sf},{wo}".encode()
        sig = hmac.new(sk, auth, self.h).digest()
        proof = bytes(a ^ b for a, b in zip(ck, sig))
        server_key = hmac.new(salted, b"Server Key", self.h).digest()
        self.expected_v = b"v=" + base64.b64encode(hmac.new(server_key, auth, self.h).digest())
        return f"{wo},p={b64(proof)}".encode()

    def verify(self, additional):
        return hmac.compare_digest(additional, self.expected_v)


# ---- blocking raw client ---------------------------------------------------------


class StreamClosed(Exception):
    pass


class RawClient:
    """One client connection. Elements are the stream's children, as
    ElementTree elements with '{ns}name' tags."""

    def __init__(self, port, direct_tls=False, alpn=None, cafile=None, timeout=10.0,
                 host="127.0.0.1"):
        self.timeout = timeout
        self.cafile = cafile
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.tls = False
        if direct_tls:
            self._wrap(alpn)
        self.eof = False
        self.closed = False  # the server's </stream:stream> arrived
        self.raw_in = bytearray()
        self._new_parser()

    # -- transport
    def _wrap(self, alpn=None):
        ctx = ssl.create_default_context(cafile=str(self.cafile) if self.cafile else None)
        if not self.cafile:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=DOMAIN)
        self.tls = True

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.stream = None  # the server's stream element (attributes)
        self.queue = deque()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _pump(self, deadline):
        """Reads once (bounded by <deadline>) and parses; False at EOF."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer from the server")
        self.sock.settimeout(left)
        try:
            b = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            b = b""
        except ssl.SSLError as e:
            # An abrupt close below TLS counts as the end of the stream.
            if "EOF" in str(e) or "eof" in str(e):
                b = b""
            else:
                raise
        except socket.timeout:
            raise TimeoutError("no answer from the server") from None
        if not b:
            self.eof = True
            return False
        self.raw_in += b
        self.parser.feed(b)
        for ev, el in self.parser.read_events():
            if ev == "start":
                if self.depth == 0:
                    self.stream = el
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.queue.append(el)
                    self.stream.remove(el)  # keep memory flat
                elif self.depth == 0:
                    self.closed = True
        return True

    def next(self, timeout=None):
        """The next top-level element; StreamClosed at EOF or stream end."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.queue:
            if self.closed or not self._pump(deadline):
                if self.queue:
                    break
                raise StreamClosed(f"stream closed; last input {bytes(self.raw_in[-300:])!r}")
        return self.queue.popleft()

    def expect(self, tag, timeout=None):
        el = self.next(timeout)
        assert el.tag == tag, f"expected {tag}, got {ET.tostring(el)[:400]!r}"
        return el

    def wait_for(self, pred, timeout=None, what="element"):
        """Skips elements until pred(el) holds; returns it (and the skipped)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        skipped = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {what}; saw {[ET.tostring(e)[:200] for e in skipped]}")
            el = self.next(left)
            if pred(el):
                return el, skipped
            skipped.append(el)

    def drain(self, quiet=0.3):
        """Elements that arrive within <quiet> s (or before the stream ends)."""
        out = []
        while True:
            try:
                out.append(self.next(quiet))
            except (TimeoutError, StreamClosed):
                return out

    def stream_error(self, timeout=None):
        """Reads to the <stream:error>; returns its condition and asserts the
        server then ends the stream and closes the connection."""
        el, _ = self.wait_for(lambda e: e.tag == q(NS_STREAM, "error"), timeout,
                              "stream error")
        conds = [local(c.tag) for c in el if c.tag.startswith("{" + NS_STREAMS + "}")
                 and local(c.tag) != "text"]
        assert len(conds) == 1, ET.tostring(el)
        self.wait_closed(timeout)
        return conds[0]

    def wait_closed(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            try:
                self._pump(deadline)
            except ET.ParseError:
                break
        assert self.closed, f"no </stream:stream> before EOF: {bytes(self.raw_in[-200:])!r}"

    def close(self):
        try:
            if not self.eof:
                self.sock.settimeout(2)
                self.send("</stream:stream>")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # -- stream
    def open(self, to=DOMAIN, header=None):
        """Sends a stream header; returns the <stream:features> element."""
        self._new_parser()
        self.send(header if header is not None else STREAM_HEADER.format(to=to))
        return self.expect(q(NS_STREAM, "features"))

    def starttls(self, alpn=None):
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        self.expect(q(NS_TLS, "proceed"))
        self._wrap(alpn)
        return self.open()

    @staticmethod
    def mechanisms(features):
        m = features.find(q(NS_SASL, "mechanisms"))
        return [x.text for x in m.findall(q(NS_SASL, "mechanism"))] if m is not None else []

    def auth_plain(self, user, password, mech="PLAIN"):
        """Returns the <success/> or <failure/> element."""
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{plain_ir(user, password)}</auth>")
        return self.next()

    def auth_scram(self, mech, user, password, cb=None, flag="n"):
        """(result element, server signature verified)."""
        s = Scram(mech, user, password, cb, flag)
        self.send(f"<auth xmlns='{NS_SASL}' mechanism='{mech}'>{b64(s.first())}</auth>")
        el = self.next()
        if el.tag != q(NS_SASL, "challenge"):
            return el, False
        self.send(f"<response xmlns='{NS_SASL}'>"
                  f"{b64(s.final(base64.b64decode(el.text or '')))}</response>")
        el = self.next()
        if el.tag == q(NS_SASL, "challenge"):  # additional data as a challenge
            ok = s.verify(base64.b64decode(el.text or ""))
            self.send(f"<response xmlns='{NS_SASL}'/>")
            el = self.next()
            return el, ok
        if el.tag == q(NS_SASL, "success"):
            return el, s.verify(base64.b64decode(el.text or ""))
        return el, False

    def bind(self, resource=None, iq_id="bind1"):
        """Restarts the stream after <success/>, binds; returns the full JID."""
        feats = self.open()
        assert feats.find(q(NS_BIND, "bind")) is not None, ET.tostring(feats)
        res = f"<resource>{xml_escape(resource)}</resource>" if resource else ""
        self.send(f"<iq type='set' id='{iq_id}'><bind xmlns='{NS_BIND}'>{res}</bind></iq>")
        el, _ = self.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id,
                              what="bind result")
        assert el.get("type") == "result", ET.tostring(el)
        return el.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}").text

    def iq(self, body, to=None, typ="get", iq_id=None, timeout=None):
        """Sends an iq and returns the answer with the same id."""
        iq_id = iq_id or "iq%d" % int(time.monotonic_ns() % 1_000_000_007)
        to_attr = f" to='{to}'" if to else ""
        self.send(f"<iq type='{typ}' id='{iq_id}'{to_attr}>{body}</iq>")
        el, _ = self.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == iq_id,
                              timeout, f"answer to iq {iq_id}")
        return el


def stanza_error(el):
    """(type, condition) of a stanza's <error/>, or None."""
    e = el.find(q(NS_CLIENT, "error"))
    if e is None:
        return None
    conds = [local(c.tag) for c in e if c.tag.startswith("{" + NS_STANZAS + "}")
             and local(c.tag) != "text"]
    return e.get("type"), (conds[0] if conds else None)


def login(n, user, password, resource=None, how="plain", timeout=10.0):
    """A bound RawClient: how = 'plain' (PLAIN on the plain_without_tls
    listener), 'starttls' (STARTTLS + PLAIN) or 'direct' (Direct TLS + PLAIN)."""
    if how == "plain":
        c = RawClient(n.xmpp["plain"], timeout=timeout)
        c.open()
    elif how == "starttls":
        c = RawClient(n.xmpp["starttls"], cafile=n.cert, timeout=timeout)
        c.open()
        c.starttls()
    elif how == "direct":
        c = RawClient(n.xmpp["direct"], direct_tls=True, cafile=n.cert, timeout=timeout)
        c.open()
    else:
        raise ValueError(how)
    try:
        el = c.auth_plain(user, password)
        assert el.tag == q(NS_SASL, "success"), ET.tostring(el)
        c.jid = c.bind(resource)
    except BaseException:
        c.close()
        raise
    return c


# ---- asyncio login, for many concurrent clients ---------------------------------


class AsyncClient:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.raw = bytearray()
        self._new_parser()

    def _new_parser(self):
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.queue = deque()

    async def next(self):
        while not self.queue:
            b = await self.r.read(16384)
            if not b:
                raise StreamClosed(f"EOF after {bytes(self.raw[-300:])!r}")
            self.raw += b
            self.parser.feed(b)
            for ev, el in self.parser.read_events():
                if ev == "start":
                    self.depth += 1
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.queue.append(el)
                    elif self.depth == 0:
                        raise StreamClosed(f"stream end after {bytes(self.raw[-300:])!r}")
        return self.queue.popleft()

    async def open(self):
        self._new_parser()
        self.w.write(STREAM_HEADER.format(to=DOMAIN).encode())
        el = await self.next()
        assert el.tag == q(NS_STREAM, "features"), ET.tostring(el)
        return el


async def async_login(port, user, password, resource):
    """Connects, authenticates with PLAIN, binds; returns (client, full JID)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    c = AsyncClient(reader, writer)
    try:
        await c.open()
        writer.write(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{plain_ir(user, password)}"
                     "</auth>".encode())
        el = await c.next()
        assert el.tag == q(NS_SASL, "success"), ET.tostring(el)
        feats = await c.open()
        assert feats.find(q(NS_BIND, "bind")) is not None
        writer.write(f"<iq type='set' id='b'><bind xmlns='{NS_BIND}'><resource>{resource}"
                     "</resource></bind></iq>".encode())
        el = await c.next()
        assert el.tag == q(NS_CLIENT, "iq") and el.get("type") == "result", ET.tostring(el)
        return c, el.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}").text
    except BaseException:
        writer.close()
        raise


# ---- jid hash (core/jid.c sz_jid_hash_bytes), to predict home reactors ------------

M64 = (1 << 64) - 1
H_P1 = 0x9E3779B97F4A7C15
H_P2 = 0xC2B2AE3D27D4EB4F


def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def jid_hash(b):
    n = len(b)
    h = 0x736A6964686173 ^ ((n * H_P1) & M64)
    i = 0
    while i + 8 <= n:
        h = (_rotl(h ^ ((int.from_bytes(b[i:i + 8], "little") * H_P2) & M64), 31) * H_P1) & M64
        i += 8
    if i < n:
        h = (_rotl(h ^ ((int.from_bytes(b[i:], "little") * H_P2) & M64), 31) * H_P1) & M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


def home_reactor(bare, reactors):
    return jid_hash(bare.encode()) % reactors


# ---- slixmpp ----------------------------------------------------------------------


def slix_client(loop, jid, password, cafile, mech=None, no_channel_binding=False,
                plugins=()):
    """A slixmpp ClientXMPP on <loop> trusting <cafile>. no_channel_binding
    hides the TLS channel binding from its SCRAM (it only knows tls-unique,
    and over TLS it would send the gs2 flag 'y', which a server advertising
    -PLUS must refuse: RFC 5802 §6), so it sends 'n'."""
    import slixmpp
    x = slixmpp.ClientXMPP(jid, password, sasl_mech=mech)
    x.loop = loop
    x.ca_certs = Path(cafile)
    for p in plugins:
        x.register_plugin(p)
    if no_channel_binding:
        fm = x["feature_mechanisms"]
        orig = fm.sasl_callback

        def creds(required, optional):
            r = orig(required, optional)
            if "channel_binding" in r:
                r["channel_binding"] = None
            return r
        fm.sasl_callback = creds
    return x


async def slix_start(x, port, use_ssl=False, timeout=20.0):
    """Connects <x> to 127.0.0.1:<port> and waits for session_start."""
    fut = x.loop.create_future()

    def ok(_):
        if not fut.done():
            fut.set_result(True)

    def bad(why):
        def f(ev):
            if not fut.done():
                fut.set_exception(AssertionError(f"slixmpp: {why}: {ev!r}"))
        return f
    x.add_event_handler("session_start", ok)
    x.add_event_handler("failed_all_auth", bad("authentication failed"))
    x.add_event_handler("connection_failed", bad("connection failed"))
    x.add_event_handler("disconnected", bad("disconnected"))
    x.connect(("127.0.0.1", port), use_ssl=use_ssl, force_starttls=not use_ssl)
    await asyncio.wait_for(fut, timeout)


async def slix_stop(x, timeout=10.0):
    fut = x.disconnect(wait=2.0)
    try:
        await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        x.abort()


def run_loop(loop, coro, timeout):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))
