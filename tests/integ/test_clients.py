"""Real XMPP client libraries log in to stanzad at their DEFAULT settings.

Each library runs as a user runs it, in its own process with a time
bound (tests/integ/clients/, README.md there): slixmpp and aioxmpp
(Debian's python3-*), libstrophe (clients/strophe_probe.c, built when
pkg-config finds it), xmpp.js (@xmpp/client, pinned in
clients/js/package-lock.json) and go-sendxmpp on the command line. Each
picks its own SASL mechanism, channel binding and stream features; the
test gives only what a user must: JID, password, the server's address
(there is no DNS here), Direct TLS where that is the option under test,
and trust in the test's self-signed certificate in the library's
documented way (slixmpp ca_certs, aioxmpp no_verify, libstrophe
XMPP_CONN_FLAG_TRUST_TLS, Node's NODE_EXTRA_CA_CERTS, Go's SSL_CERT_FILE
or go-sendxmpp --no-tls-verify).

The node has the listeners of a default deployment (deploy/stanzad.dev.yaml):
c2s with STARTTLS required and c2s-tls (XEP-0368 Direct TLS), a
certificate for 'localhost', accounts made with stanzactl.

Per library:
- test_login_message: connect, log in, bind, initial presence, a roster
  get (answered or not), a message to a second account (a raw client)
  that arrives, its answer that arrives, a clean disconnect; over STARTTLS
  (the default) and Direct TLS (the option).
- test_roster: the roster get must be answered with a result carrying
  <query xmlns='jabber:iq:roster'/> (core/mod/mod_roster.c).
- test_sendxmpp: go-sendxmpp sends a message to an online slixmpp.

slixmpp 1.8 by default tries SCRAM-SHA-512-PLUS with the gs2 header
'p=tls-unique,,' on TLS 1.3: the server accepts it (tls.unique_on_tls13,
on by default), so it logs in at the first attempt.

With SZ_CLIENTS_REPORT=FILE each client run appends one JSON line (the
library, the transport and its events) to FILE.
"""

import asyncio
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import free_ports, sanitizer_env
from xmpp_util import (DOMAIN, NS_CLIENT, add_user, login, make_cert, q, run_loop,
                       slix_client, slix_start, slix_stop, xml_escape)

PW = "clients-Secret-1"
CLIENTS = Path(__file__).resolve().parent / "clients"
JS = CLIENTS / "js"
STEP_S = 20          # each client's deadline for one step
RUN_S = 4 * STEP_S + 10  # the bound of one client process

BOUNDS = {}
DEFAULT_BOUND = 150


class LoginRefused(AssertionError):
    """The library's default login did not get through."""


class RosterNotAnswered(AssertionError):
    """The roster get was not answered with a jabber:iq:roster result."""


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


# ---- the node ------------------------------------------------------------------


def default_node(make):
    """A node with a default deployment's client listeners: c2s with
    STARTTLS required (n.xmpp['starttls']) and c2s-tls ('direct'), plus
    the admin listener the fixture polls."""
    pa, p1, p2 = free_ports(3)
    n = make(start=False, reactors=2,
             listeners=[("admin", pa), ("c2s", p1), ("c2s-tls", p2)])
    cert, key = make_cert(n.dir / "tls")
    n.cert = cert
    n.xmpp = {"starttls": p1, "direct": p2}
    n.write_config("\n".join([
        "node:", "  reactors: 2", "  log_level: info",
        "hosts:", f"  - {{ domain: {DOMAIN}, tls_cert: {cert}, tls_key: {key} }}",
        "listen:",
        f"  - {{ kind: admin, address: 127.0.0.1, port: {pa} }}",
        f"  - {{ kind: c2s, address: 127.0.0.1, port: {p1}, tls: starttls-required }}",
        f"  - {{ kind: c2s-tls, address: 127.0.0.1, port: {p2} }}",
        "storage:", f"  path: {n.dir / 'data.db'}",
    ]) + "\n")
    n.start()
    return n


# ---- the libraries ----------------------------------------------------------------


def py_has(module):
    r = subprocess.run([sys.executable, "-c", f"import {module}"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return r.returncode == 0


def node_ok():
    """Why xmpp.js cannot run here, or None."""
    node = shutil.which("node")
    if not node:
        return "node is not installed (deploy/install-deps.sh --test)"
    if not (JS / "node_modules" / "@xmpp" / "client").is_dir():
        return f"{JS}/node_modules is missing (deploy/install-deps.sh --test runs npm ci)"
    v = subprocess.run([node, "--version"], stdout=subprocess.PIPE, timeout=30).stdout.decode()
    m = re.match(r"v(\d+)\.(\d+)", v)
    if not m or (int(m.group(1)), int(m.group(2))) < (20, 10):
        return f"@xmpp/client needs Node.js >= 20.10, this is {v.strip()}"
    return None


def unavailable(lib):
    """Why <lib> cannot run on this machine, or None."""
    if lib == "slixmpp":
        return None if py_has("slixmpp") else "python3-slixmpp is not installed"
    if lib == "aioxmpp":
        return None if py_has("aioxmpp") else "python3-aioxmpp is not installed"
    if lib == "libstrophe":
        p = os.environ.get("SZ_STROPHE_PROBE")
        return None if p and Path(p).exists() else \
            "strophe_probe was not built (libstrophe-dev missing at configure time)"
    if lib == "xmppjs":
        return node_ok()
    if lib == "go-sendxmpp":
        return None if shutil.which("go-sendxmpp") else "go-sendxmpp is not installed"
    raise ValueError(lib)


def client_cmd(lib, n, user, transport, peer=None, body=None, expect=None,
               roster_service=False):
    """(argv, env) that run <lib> as user <user> against node <n>."""
    port = n.xmpp[transport]
    env = dict(os.environ)
    jid = f"{user}@{DOMAIN}"
    if lib in ("slixmpp", "aioxmpp"):
        script = CLIENTS / ("slix_client.py" if lib == "slixmpp" else "aioxmpp_client.py")
        argv = [sys.executable, str(script), "--jid", jid, "--password", PW,
                "--host", "127.0.0.1", "--port", str(port), "--cafile", str(n.cert),
                "--timeout", str(STEP_S)]
        if transport == "direct":
            argv.append("--direct-tls")
        if peer:
            argv += ["--peer", peer, "--body", body, "--expect", expect]
        if roster_service:
            argv.append("--roster-service")
        return argv, env
    if lib == "libstrophe":
        argv = [os.environ["SZ_STROPHE_PROBE"], jid, PW, "127.0.0.1", str(port), transport,
                str(STEP_S)]
        if peer:
            argv += [peer, body, expect]
        return argv, sanitizer_env()
    if lib == "xmppjs":
        scheme = "xmpps" if transport == "direct" else "xmpp"
        # 'localhost', the name in the certificate, as a user would write it.
        argv = [shutil.which("node"), str(JS / "client.mjs"),
                "--service", f"{scheme}://localhost:{port}", "--domain", DOMAIN,
                "--username", user, "--password", PW, "--timeout", str(STEP_S)]
        if peer:
            argv += ["--peer", peer, "--body", body, "--expect", expect]
        env["NODE_EXTRA_CA_CERTS"] = str(n.cert)
        return argv, env
    raise ValueError(lib)


class ClientRun:
    """One client process; its stdout JSON lines arrive in self.events."""

    def __init__(self, lib, transport, argv, env, cwd):
        self.lib, self.transport = lib, transport
        self.events = []
        self._q = queue.Queue()
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.t0 = time.monotonic()
        self._err = []
        self._threads = [threading.Thread(target=self._read_out, daemon=True),
                         threading.Thread(target=self._read_err, daemon=True)]
        for t in self._threads:
            t.start()

    def _read_out(self):
        for ln in self.proc.stdout:
            ln = ln.decode(errors="replace").strip()
            if not ln:
                continue
            try:
                ev = json.loads(ln)
            except ValueError:
                ev = {"ev": "garbage", "line": ln[:300]}
            self._q.put(ev)
        self._q.put(None)

    def _read_err(self):
        for ln in self.proc.stderr:
            self._err.append(ln.decode(errors="replace"))

    def stderr(self):
        return "".join(self._err)[-3000:]

    def wait_event(self, names, timeout):
        """The first event named in <names> (earlier ones are kept in
        self.events); None when the process ended without one."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.lib}: no {names} within {timeout}s; "
                                   f"events {self.events}; stderr {self.stderr()}")
            try:
                ev = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                self._q.put(None)
                return None
            self.events.append(ev)
            if ev["ev"] in names:
                return ev

    def finish(self, timeout=RUN_S):
        """Waits for the exit (killing the process, by PID, past
        <timeout>); returns the exit status and all events."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            rc = None
        for t in self._threads:
            t.join(10)
        while True:
            try:
                ev = self._q.get_nowait()
            except queue.Empty:
                break
            if ev is not None:
                self.events.append(ev)
        report = os.environ.get("SZ_CLIENTS_REPORT")
        if report:
            with open(report, "a") as f:
                f.write(json.dumps({"lib": self.lib, "transport": self.transport, "rc": rc,
                                    "events": self.events}) + "\n")
        print(f"{self.lib} over {self.transport}: rc={rc}")
        for ev in self.events:
            print("  ", json.dumps(ev))
        return rc, self.events

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def event(events, name):
    for ev in events:
        if ev["ev"] == name:
            return ev
    return None


def check_bound(lib, user, events, run):
    failed = event(events, "login_failed")
    if failed:
        raise LoginRefused(f"{lib}: default login refused: {json.dumps(failed)}; "
                           f"stderr {run.stderr()}")
    b = event(events, "bound")
    assert b, f"{lib}: never bound: {events}; stderr {run.stderr()}"
    assert b["jid"].startswith(f"{user}@{DOMAIN}/"), b
    assert b["mech"], f"{lib}: no SASL mechanism seen: {b}"
    return b


# ---- login, presence, message ----------------------------------------------------

LIBS = ["slixmpp", "aioxmpp", "libstrophe", "xmppjs"]

def lib_params():
    out = []
    for lib in LIBS:
        for tr in ("starttls", "direct"):
            out.append(pytest.param(lib, tr, id=f"{lib}-{tr}"))
    return out


@pytest.mark.parametrize("lib,transport", lib_params())
def test_login_message(node, lib, transport):
    why = unavailable(lib)
    if why:
        pytest.skip(why)
    n = default_node(node)
    user = "u" + re.sub(r"\W", "", lib)
    add_user(n, user, PW)
    add_user(n, "peer", PW)
    peer = login(n, "peer", PW, resource="raw", how="starttls")
    try:
        peer.send("<presence/>")
        body = f"hello from {lib} {uuid.uuid4().hex[:8]}"
        expect = f"answer to {lib} {uuid.uuid4().hex[:8]}"
        argv, env = client_cmd(lib, n, user, transport, peer=f"peer@{DOMAIN}", body=body,
                               expect=expect)
        run = ClientRun(lib, transport, argv, env, n.dir)
        try:
            ev = run.wait_event({"sent", "login_failed", "timeout", "crashed"}, RUN_S)
            if ev is None or ev["ev"] != "sent":
                run.finish(30)
                check_bound(lib, user, run.events, run)
                pytest.fail(f"{lib}: stopped before sending: {run.events}; {run.stderr()}")
            # The message reaches the peer's bare JID, from the library's
            # full JID; the peer answers that full JID.
            el, _ = peer.wait_for(
                lambda e: e.tag == q(NS_CLIENT, "message") and
                e.findtext(q(NS_CLIENT, "body")) == body, STEP_S, f"message from {lib}")
            frm = el.get("from")
            assert frm and frm.startswith(f"{user}@{DOMAIN}/"), ET.tostring(el)
            assert el.get("type") == "chat", ET.tostring(el)
            peer.send(f"<message to='{xml_escape(frm)}' type='chat' id='a1'>"
                      f"<body>{xml_escape(expect)}</body></message>")
            rc, events = run.finish()
        finally:
            run.kill()
    finally:
        peer.close()

    b = check_bound(lib, user, events, run)
    assert b["jid"] == frm, (b, frm)
    assert event(events, "presence"), events
    assert event(events, "roster"), f"{lib}: the roster get got no answer at all: {events}"
    got = event(events, "received")
    assert got and got["body"] == expect, f"{lib}: the answer did not arrive: {events}"
    assert got["frm"] == f"peer@{DOMAIN}/raw", got
    assert event(events, "closed"), f"{lib}: no clean disconnect: {events}"
    assert rc == 0, f"{lib}: exit {rc}: {events}; stderr {run.stderr()}"
    # What it negotiated, where the library tells (libstrophe does not).
    if b.get("tls") is not None:
        assert b["tls"] in ("TLSv1.2", "TLSv1.3"), b
    # The server keeps nothing open once every client is gone.
    n.wait_idle()


# ---- roster ------------------------------------------------------------------------


@pytest.mark.parametrize("lib", LIBS)
def test_roster(node, lib):
    """The roster as each library asks for it by default, over STARTTLS.
    aioxmpp's is the RosterClient service, which asks while the stream is
    being established (an error answer there fails the connection)."""
    why = unavailable(lib)
    if why:
        pytest.skip(why)
    n = default_node(node)
    user = "r" + re.sub(r"\W", "", lib)
    add_user(n, user, PW)
    argv, env = client_cmd(lib, n, user, "starttls", roster_service=(lib == "aioxmpp"))
    run = ClientRun(lib, "starttls", argv, env, n.dir)
    try:
        rc, events = run.finish()
    finally:
        run.kill()
    r = event(events, "roster")
    if r is None or event(events, "bound"):
        check_bound(lib, user, events, run)
    if r is None:
        pytest.fail(f"{lib}: no roster answer reported: {events}; {run.stderr()}")
    if r.get("type") != "result" or r.get("ns") != "jabber:iq:roster":
        raise RosterNotAnswered(f"{lib}: roster get answered {json.dumps(r)}")
    assert event(events, "closed") and rc == 0, (rc, events, run.stderr())


# ---- go-sendxmpp -------------------------------------------------------------------


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


@pytest.mark.parametrize("transport", ["starttls", "direct"])
def test_sendxmpp(node, tmp_path, transport):
    """go-sendxmpp's typical use: a one-shot message from a script to a
    user who is online, here slixmpp (with PLAIN, as README.md advises
    for it). STARTTLS is its default; Direct TLS is its -t option. Over
    STARTTLS it trusts the test's certificate through Go's SSL_CERT_FILE
    (verification on); over Direct TLS it uses its --no-tls-verify flag."""
    why = unavailable("go-sendxmpp") or unavailable("slixmpp")
    if why:
        pytest.skip(why)
    n = default_node(node)
    add_user(n, "sender", PW)
    add_user(n, "reader", PW)
    body = f"from go-sendxmpp {uuid.uuid4().hex[:8]}"
    home = tmp_path / "home"  # no user config of the machine's is read
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    argv = ["go-sendxmpp", "--debug", "-u", f"sender@{DOMAIN}", "-p", PW,
            "--timeout", str(STEP_S)]
    if transport == "starttls":
        argv += ["-j", f"localhost:{n.xmpp['starttls']}"]
        env["SSL_CERT_FILE"] = str(n.cert)
    else:
        argv += ["-t", "-n", "-j", f"127.0.0.1:{n.xmpp['direct']}"]
    argv.append(f"reader@{DOMAIN}")

    loop = new_loop()
    try:
        x = slix_client(loop, f"reader@{DOMAIN}/slix", PW, n.cert, mech="PLAIN")
        got = loop.create_future()

        def on_message(m):
            if m["body"] == body and not got.done():
                got.set_result(m)
        x.add_event_handler("message", on_message)
        run_loop(loop, slix_start(x, n.xmpp["starttls"]), 30)
        x.send_presence()

        async def send_and_receive():
            p = await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            try:
                out, _ = await asyncio.wait_for(p.communicate(body.encode() + b"\n"), RUN_S)
            except asyncio.TimeoutError:
                p.kill()  # this process only, by PID
                await p.wait()
                raise
            m = await asyncio.wait_for(got, STEP_S)
            return p.returncode, out.decode(errors="replace"), m
        rc, out, m = run_loop(loop, send_and_receive(), RUN_S + STEP_S + 10)
        run_loop(loop, slix_stop(x), 15)
    finally:
        close_loop(loop)

    assert rc == 0, f"go-sendxmpp exited {rc}:\n{out[-3000:]}"
    assert str(m["from"]).startswith(f"sender@{DOMAIN}/"), m
    assert m["body"] == body
    # Its --debug prints what the server sent: an empty <success/> with no
    # <challenge/> before it means PLAIN (SCRAM always has a challenge).
    mech = "PLAIN" if "<success" in out and "<challenge" not in out else "SCRAM-*"
    print(f"go-sendxmpp over {transport}: mechanism {mech}; from {m['from']}")
    report = os.environ.get("SZ_CLIENTS_REPORT")
    if report:
        with open(report, "a") as f:
            f.write(json.dumps({"lib": "go-sendxmpp", "transport": transport, "rc": rc,
                                "mech_inferred": mech, "from": str(m["from"])}) + "\n")
    n.wait_idle()
