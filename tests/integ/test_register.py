"""XEP-0077 in-band registration against a real stanzad: offered only where
a host enables it (and only after TLS where TLS is required), form, account
creation usable for login, conflicts, missing fields, the per-source hourly
budget, and refusal on hosts that do not enable it."""
import pytest

from conftest import Node, free_ports
from xmpp_util import (DOMAIN, NS_CLIENT, NS_SASL, NS_STANZAS, RawClient, local, login,
                       make_cert, q, stanza_error)

NS_REG = "jabber:iq:register"
NS_REG_FEATURE = "http://jabber.org/features/iq-register"
CLOSED = "closed.test"


def reg_node(make, per_hour=3):
    pa, p_plain, p_tls = free_ports(3)
    n = make(start=False, reactors=2, listeners=[("admin", pa), ("c2s", p_plain), ("c2s", p_tls)])
    assert isinstance(n, Node)
    cert, key = make_cert(n.dir / "tls")
    n.cert = cert
    n.xmpp = {"plain": p_plain, "starttls": p_tls}
    n.write_config("\n".join([
        "node:", "  reactors: 2",
        "hosts:",
        f"  - {{ domain: {DOMAIN}, tls_cert: {cert}, tls_key: {key}, register: true }}",
        f"  - {{ domain: {CLOSED}, tls_cert: {cert}, tls_key: {key} }}",
        "listen:",
        f"  - {{ kind: admin, address: 127.0.0.1, port: {pa} }}",
        f"  - {{ kind: c2s, address: 127.0.0.1, port: {p_plain}, tls: none, plain_without_tls: true }}",
        f"  - {{ kind: c2s, address: 127.0.0.1, port: {p_tls}, tls: starttls-required }}",
        "storage:", f"  path: {n.dir / 'data.db'}",
        "limits:", f"  register_per_source_per_hour: {per_hour}",
    ]) + "\n")
    n.start()
    return n


def register(c, user, password, iq_id="r1"):
    fields = ""
    if user is not None:
        fields += f"<username>{user}</username>"
    if password is not None:
        fields += f"<password>{password}</password>"
    return c.iq(f"<query xmlns='{NS_REG}'>{fields}</query>", typ="set", iq_id=iq_id)


def test_register_create_login_conflict(node):
    n = reg_node(node)
    with RawClient(n.xmpp["plain"]) as c:
        f = c.open()
        assert f.find(q(NS_REG_FEATURE, "register")) is not None
        form = c.iq(f"<query xmlns='{NS_REG}'/>", iq_id="form")
        assert form.get("type") == "result"
        qel = form.find(q(NS_REG, "query"))
        assert qel.find(q(NS_REG, "username")) is not None
        assert qel.find(q(NS_REG, "password")) is not None
        ok = register(c, "Newbie", "s3cret pass")
        assert ok.get("type") == "result", ok
        # The username is prepared like a localpart: a case variant exists.
        dup = register(c, "newbie", "other", iq_id="r2")
        assert stanza_error(dup) == ("cancel", "conflict")
    # The new account logs in (PLAIN against the stored SCRAM keys).
    c = login(n, "newbie", "s3cret pass")
    c.close()
    n.stop_clean()


def test_register_bad_fields_and_budget(node):
    n = reg_node(node, per_hour=2)
    with RawClient(n.xmpp["plain"]) as c:
        c.open()
        assert stanza_error(register(c, "x1", None)) == ("modify", "not-acceptable")
        assert stanza_error(register(c, "a@b", "pw", iq_id="r2")) == ("modify", "not-acceptable")
        assert register(c, "one", "pw", iq_id="r3").get("type") == "result"
        assert register(c, "two", "pw", iq_id="r4").get("type") == "result"
        # Third attempt from this source this hour: over the budget of 2.
        assert stanza_error(register(c, "three", "pw", iq_id="r5")) == ("wait", "resource-constraint")
    n.stop_clean()


def test_register_refused_where_not_enabled(node):
    n = reg_node(node)
    with RawClient(n.xmpp["plain"]) as c:
        f = c.open(to=CLOSED)
        assert f.find(q(NS_REG_FEATURE, "register")) is None
        err = c.iq(f"<query xmlns='{NS_REG}'/>", iq_id="form")
        assert stanza_error(err) == ("cancel", "service-unavailable")
        err = register(c, "eve", "pw")
        assert stanza_error(err) == ("cancel", "service-unavailable")
    # Before TLS on a starttls-required listener: not offered, and an
    # attempt is a stanza before authentication (RFC 6120 §4.9.3.12).
    with RawClient(n.xmpp["starttls"], cafile=n.cert) as c:
        f = c.open()
        assert f.find(q(NS_REG_FEATURE, "register")) is None
        c.send(f"<iq type='set' id='x'><query xmlns='{NS_REG}'><username>eve</username>"
               "<password>pw</password></query></iq>")
        assert c.stream_error() == "not-authorized"
    # After STARTTLS it is offered.
    with RawClient(n.xmpp["starttls"], cafile=n.cert) as c:
        c.open()
        f = c.starttls()
        assert f.find(q(NS_REG_FEATURE, "register")) is not None
        assert register(c, "viatls", "pw").get("type") == "result"
    n.stop_clean()
