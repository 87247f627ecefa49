"""slixmpp (Debian python3-slixmpp) as a user runs it, for test_clients.py.

Defaults everywhere (SASL mechanism order, channel binding, stream
features) except what a user must give: the JID and password, the
server's address (no DNS here), Direct TLS when asked (--direct-tls, the
use_ssl option), and trust in the test's self-signed certificate
(ca_certs, the documented option).

Steps, each reported as one JSON line on stdout (see clients/README.md):
connect, log in, bind, initial presence, roster get, a message to --peer,
the answer from --peer (--expect), disconnect. Every step has a deadline;
exit status 0 only when every step asked for worked.
"""

import argparse
import asyncio
import base64
import json
import logging
import sys
import time

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


def emit(ev, **kw):
    print(json.dumps({"ev": ev, **kw}), flush=True)


class Trace(logging.Handler):
    """Keeps what slixmpp logs of the stream (its own SEND:/RECV: debug
    lines), to report the SASL exchange the library chose by itself."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.auth = []

    def emit(self, record):
        msg = record.getMessage()
        if "urn:ietf:params:xml:ns:xmpp-sasl" in msg:
            self.auth.append(msg[:400])


def gs2_of(auth_lines):
    """[(mechanism, gs2 header)] of each <auth/> the client sent."""
    out = []
    for ln in auth_lines:
        if not ln.startswith("SEND: <auth "):
            continue
        mech = ln.split('mechanism="', 1)[1].split('"', 1)[0]
        ir = ln.split(">", 1)[1].split("<", 1)[0]
        try:
            raw = base64.b64decode(ir)
        except ValueError:
            raw = b""
        gs2 = raw.split(b",", 2)
        out.append((mech, b",".join(gs2[:2]).decode(errors="replace") + "," if mech.startswith("SCRAM") else ""))
    return out


async def run(a, x, trace):
    loop = asyncio.get_event_loop()
    started = loop.create_future()

    def done(what):
        def f(ev):
            if not started.done():
                started.set_result((what, ev))
        return f
    x.add_event_handler("session_start", done("session"))
    x.add_event_handler("failed_all_auth", done("auth failed"))
    x.add_event_handler("connection_failed", done("connection failed"))
    x.add_event_handler("disconnected", done("disconnected"))
    tls = []

    def tls_up(_):
        o = x.transport.get_extra_info("ssl_object") if x.transport else None
        tls.append(o.version() if o else None)
    x.add_event_handler("failed_auth", tls_up)
    x.add_event_handler("auth_success", tls_up)
    inbox = asyncio.Queue()
    x.add_event_handler("message", lambda m: inbox.put_nowait(m))

    t0 = time.monotonic()
    x.connect((a.host, a.port), use_ssl=a.direct_tls)
    what, ev = await asyncio.wait_for(started, a.timeout)
    auths = gs2_of(trace.auth)
    tls = tls[-1] if tls else None
    if what != "session":
        emit("login_failed", why=what, detail=repr(ev), tls=tls,
             attempts=[{"mech": m, "gs2": g} for m, g in auths],
             server=[ln for ln in trace.auth if ln.startswith("RECV:")][-4:])
        return 1
    mech = x["feature_mechanisms"].mech.name
    emit("bound", jid=str(x.boundjid), mech=mech, gs2=auths[-1][1] if auths else None,
         attempts=[{"mech": m, "gs2": g} for m, g in auths], tls=tls,
         secs=round(time.monotonic() - t0, 3))

    x.send_presence()
    emit("presence")

    # The roster as a user asks for it: get_roster() (RFC 6121 §2.2).
    try:
        r = await x.get_roster(timeout=a.timeout)
        q = r.xml.find("{jabber:iq:roster}query")
        emit("roster", type=r["type"], ns="jabber:iq:roster" if q is not None else None,
             items=len(r["roster"]["items"]) if q is not None else 0)
    except IqError as e:
        emit("roster", type="error", cond=e.condition, etype=e.etype)
    except IqTimeout:
        emit("roster", type="timeout")

    rc = 0
    if a.peer:
        x.send_message(mto=a.peer, mbody=a.body, mtype="chat")
        emit("sent", to=a.peer)
        try:
            while True:
                m = await asyncio.wait_for(inbox.get(), a.timeout)
                if m["type"] in ("chat", "normal") and m["body"] == a.expect:
                    emit("received", frm=str(m["from"]), body=m["body"])
                    break
        except asyncio.TimeoutError:
            emit("receive_timeout")
            rc = 1

    await asyncio.wait_for(x.disconnect(wait=2.0), a.timeout)
    emit("closed")
    return rc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--direct-tls", action="store_true")
    p.add_argument("--cafile")
    p.add_argument("--peer")
    p.add_argument("--body", default="hello")
    p.add_argument("--expect", default="hello back")
    p.add_argument("--timeout", type=float, default=20)
    a = p.parse_args()

    trace = Trace()
    log = logging.getLogger("slixmpp.xmlstream.xmlstream")
    log.setLevel(logging.DEBUG)
    log.addHandler(trace)
    log.propagate = False
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    x = slixmpp.ClientXMPP(a.jid, a.password)
    if a.cafile:
        x.ca_certs = a.cafile
    try:
        rc = x.loop.run_until_complete(run(a, x, trace))
    except asyncio.TimeoutError:
        emit("timeout")
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
