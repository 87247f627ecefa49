"""aioxmpp (Debian python3-aioxmpp) as a user runs it, for test_clients.py.

Defaults everywhere except what a user must give: the JID and password,
the server's address (override_peer: no DNS here; STARTTLS, or Direct TLS
with --direct-tls), and the certificate policy, through the documented
make_security_layer(password, no_verify=True) for a self-signed test
certificate. The session is a PresenceManagedClient (it sends the initial
presence itself); the roster is asked for with one roster-get IQ, or,
with --roster-service, by summoning the RosterClient service as an IM
application does: it asks during stream establishment, and an error
answer there fails the connection.

Steps, each one JSON line on stdout (clients/README.md): connect, log
in, bind, initial presence, roster get, a message to --peer, the answer
from --peer (--expect), disconnect. Every step has a deadline; exit status
0 only when every step asked for worked.
"""

import argparse
import asyncio
import json
import logging
import sys
import time

import aioxmpp
import aioxmpp.connector
import aioxmpp.dispatcher
import aioxmpp.errors
import aioxmpp.roster.xso as roster_xso


def emit(ev, **kw):
    print(json.dumps({"ev": ev, **kw}), flush=True)


class Trace(logging.Handler):
    """What aiosasl logs of its choice ("attempting SCRAM-SHA-256
    mechanism") and what aioxmpp's XMLStream logs it received."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.mechs = []
        self.recv = []
        self.roster_asked = False

    def emit(self, record):
        msg = record.getMessage()
        if record.name.startswith("aiosasl") and msg.startswith("attempting "):
            self.mechs.append(msg.split()[1])
        elif record.name.startswith("aioxmpp.roster") and msg == "requesting initial roster":
            self.roster_asked = True
        elif msg.startswith("RECV") and "xmpp-sasl" in msg:
            self.recv.append(msg[:300])


def tls_version(client):
    """The negotiated TLS version, read from the transport (pyOpenSSL)."""
    try:
        xs = client.stream._xmlstream
        conn = xs.transport.get_extra_info("ssl_object")
        return conn.get_protocol_version_name()
    except Exception:  # the private path changed: report it as unknown
        return None


async def run(a, trace):
    jid = aioxmpp.JID.fromstr(a.jid)
    conn = (aioxmpp.connector.XMPPOverTLSConnector() if a.direct_tls
            else aioxmpp.connector.STARTTLSConnector())
    client = aioxmpp.PresenceManagedClient(
        jid, aioxmpp.make_security_layer(a.password, no_verify=True),
        override_peer=[(a.host, a.port, conn)])
    client.presence = aioxmpp.PresenceState(True)
    initial = asyncio.get_event_loop().create_future()
    if a.roster_service:
        roster = client.summon(aioxmpp.RosterClient)
        roster.on_initial_roster_received.connect(
            lambda: initial.done() or initial.set_result(True))
    inbox = asyncio.Queue()

    def on_message(msg):
        inbox.put_nowait(msg)
    client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher).register_callback(
        aioxmpp.MessageType.CHAT, None, on_message)

    t0 = time.monotonic()
    try:
        cm = client.connected()
        stream = await asyncio.wait_for(cm.__aenter__(), a.timeout)
    except Exception as e:
        if trace.roster_asked and isinstance(e, aioxmpp.errors.XMPPError):
            # The RosterClient's request during stream establishment.
            emit("roster", type="error", cond=e.condition.value[1], etype=e.TYPE.value,
                 during="stream establishment")
        emit("login_failed", why=type(e).__name__, detail=str(e)[:300],
             attempts=[{"mech": m, "gs2": "n,,"} for m in trace.mechs],
             server=trace.recv[-4:])
        return 1
    # aiosasl's SCRAM never binds the channel: its gs2 header is "n,,".
    emit("bound", jid=str(client.local_jid), mech=trace.mechs[-1] if trace.mechs else None,
         gs2="n,," if trace.mechs and trace.mechs[-1].startswith("SCRAM") else "",
         attempts=[{"mech": m} for m in trace.mechs], tls=tls_version(client),
         secs=round(time.monotonic() - t0, 3))
    emit("presence")

    rc = 0
    if a.roster_service:
        # The RosterClient asked while the stream was established, and the
        # connection came up: the answer was a result.
        await asyncio.wait_for(initial, a.timeout)
        emit("roster", type="result", ns="jabber:iq:roster", items=len(roster.items),
             service=True)
    else:
        iq = aioxmpp.IQ(type_=aioxmpp.IQType.GET, payload=roster_xso.Query())
        try:
            r = await asyncio.wait_for(stream.send(iq), a.timeout)
            emit("roster", type="result", ns="jabber:iq:roster" if r is not None else None,
                 items=len(r.items) if r is not None else 0)
        except aioxmpp.errors.XMPPError as e:
            emit("roster", type="error", cond=e.condition.value[1], etype=e.TYPE.value)
        except asyncio.TimeoutError:
            emit("roster", type="timeout")

    if a.peer:
        msg = aioxmpp.Message(to=aioxmpp.JID.fromstr(a.peer), type_=aioxmpp.MessageType.CHAT)
        msg.body[None] = a.body
        await asyncio.wait_for(stream.send(msg), a.timeout)
        emit("sent", to=a.peer)
        try:
            while True:
                m = await asyncio.wait_for(inbox.get(), a.timeout)
                if m.body.any() == a.expect:
                    emit("received", frm=str(m.from_), body=m.body.any())
                    break
        except asyncio.TimeoutError:
            emit("receive_timeout")
            rc = 1

    await asyncio.wait_for(cm.__aexit__(None, None, None), a.timeout)
    emit("closed")
    return rc


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--direct-tls", action="store_true")
    p.add_argument("--cafile")  # unused: no_verify (see the module comment)
    p.add_argument("--peer")
    p.add_argument("--body", default="hello")
    p.add_argument("--expect", default="hello back")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--roster-service", action="store_true")
    a = p.parse_args()

    trace = Trace()
    for name in ("aiosasl", "aioxmpp.node", "aioxmpp.roster"):
        lg = logging.getLogger(name)
        lg.setLevel(logging.DEBUG)
        lg.addHandler(trace)
        lg.propagate = False
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    try:
        rc = asyncio.run(asyncio.wait_for(run(a, trace), 4 * a.timeout))
    except asyncio.TimeoutError:
        emit("timeout")
        rc = 1
    sys.exit(rc)


if __name__ == "__main__":
    main()
