"""The end of a bound session: its unavailable presence goes out the
moment its stream ends (RFC 6121 §4.5.2), whether the client closed the
stream, the TCP connection was reset or the server ended the stream, and
not when the connection is finally freed after the lingering close (up to
seconds later). From that moment the resource is no longer bound, so a
stanza for it takes the no-such-resource rules (RFC 6121 §8.5.3.2.1)
instead of disappearing into a dead stream.

Raw-socket clients against a real stanzad with 2 reactors."""

import socket
import struct
import time
import xml.etree.ElementTree as ET

import pytest

from xmpp_util import NS_CLIENT, c2s_node, import_users, login, q

PW = "end-Secret-1"
PROMPT = 1.0  # seconds: "at once", well below the 5 s lingering close


@pytest.fixture
def two(node):
    n = c2s_node(node)
    import_users(n, [("ann", PW), ("bob", PW)], iterations=1)
    return n


def is_unavailable_from(jid):
    return lambda el: (el.tag == q(NS_CLIENT, "presence") and el.get("type") == "unavailable"
                       and el.get("from") == jid)


def online(n, user, res):
    c = login(n, user, PW, res)
    c.send("<presence/>")
    return c


def expect_prompt_unavailable(watcher, jid):
    t0 = time.monotonic()
    watcher.wait_for(is_unavailable_from(jid), timeout=4.0, what="unavailable presence")
    took = time.monotonic() - t0
    assert took < PROMPT, f"unavailable presence of {jid} came after {took:.2f} s"


def test_stream_close_is_unavailable_at_once(two):
    with online(two, "ann", "a") as a, online(two, "ann", "b") as b:
        b.drain()
        # The client ends its stream but keeps the TCP connection open:
        # the server's lingering close waits for its EOF.
        a.send("</stream:stream>")
        expect_prompt_unavailable(b, a.jid)


def test_tcp_reset_is_unavailable_at_once(two):
    with online(two, "ann", "a") as a, online(two, "ann", "b") as b:
        b.drain()
        raw = a.sock
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()  # RST
        expect_prompt_unavailable(b, a.jid)


def test_stanza_to_ended_resource_is_not_lost(two):
    with online(two, "ann", "a") as a, online(two, "ann", "b") as b, \
            login(two, "bob", PW, "x") as bob:
        b.drain()
        a.send("</stream:stream>")
        b.wait_for(is_unavailable_from(a.jid), timeout=4.0)
        # ann/a is gone although its connection still lingers: a chat
        # message to it is handled as if sent to the bare JID (§8.5.3.2.1)
        # and reaches ann/b.
        bob.send(f"<message to='{a.jid}' type='chat' id='m1'><body>hi</body></message>")
        el, _ = b.wait_for(lambda e: e.tag == q(NS_CLIENT, "message"), timeout=4.0,
                           what="message")
        assert el.get("id") == "m1", ET.tostring(el)


def test_server_stream_error_is_unavailable_at_once(two):
    with online(two, "ann", "a") as a, online(two, "ann", "b") as b:
        b.drain()
        # Bad XML ends the stream from the server's side.
        a.send("<message><unclosed></message>")
        expect_prompt_unavailable(b, a.jid)
