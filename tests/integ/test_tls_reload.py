"""Certificates are reloaded on SIGHUP without dropping connections: a TLS
session opened before the reload keeps working on its old certificate,
while new connections get the new one. A broken certificate file on reload
keeps the running certificates."""
import shutil
import signal
import ssl

from conftest import wait_until
from xmpp_util import RawClient, add_user, c2s_node, make_cert, q, NS_CLIENT

PW = "reload-pass"


def peer_cert(c):
    return c.sock.getpeercert(binary_form=True)


def logged_in(n, cafile):
    c = RawClient(n.xmpp["starttls"], cafile=cafile)
    c.open()
    c.starttls()
    c.auth_plain("rita", PW)
    c.bind()
    return c


def test_sighup_reloads_certificates(node, tmp_path):
    n = c2s_node(node)
    add_user(n, "rita", PW)
    old_cert = n.cert.read_bytes()
    before = logged_in(n, n.cert)
    cert_a = peer_cert(before)

    # New certificate and key written over the configured files.
    new_cert, new_key = make_cert(tmp_path / "new")
    shutil.copy(new_key, n.cert.with_name("localhost.key"))
    shutil.copy(new_cert, n.cert)
    n.signal(signal.SIGHUP)
    wait_until(lambda: 'msg="reloaded"' in n.stderr_text(), 10, 0.05, "reload")

    after = logged_in(n, n.cert)
    cert_b = peer_cert(after)
    assert cert_b != cert_a, "new connections still get the old certificate"
    # The connection from before the reload still works, on its old session.
    pong = before.iq("<ping xmlns='urn:xmpp:ping'/>", to="localhost")
    assert pong.tag == q(NS_CLIENT, "iq") and pong.get("type") == "result"
    assert peer_cert(before) == cert_a
    before.close()
    after.close()

    # A broken file: the reload keeps the running certificates.
    n.cert.write_bytes(b"not a certificate\n")
    n.signal(signal.SIGHUP)
    wait_until(lambda: "certificates not reloaded" in n.stderr_text(), 10, 0.05,
               "refused reload")
    (tmp_path / "ca.pem").write_bytes(new_cert.read_bytes())
    still = logged_in(n, tmp_path / "ca.pem")
    assert peer_cert(still) == cert_b
    still.close()
    n.cert.write_bytes(old_cert)
    n.stop_clean()
