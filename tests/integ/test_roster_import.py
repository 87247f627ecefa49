"""stanzactl import-rosters, the roster provisioning of the benchmarks
(`stanza-bench provision --contacts`): items written through the storage
API, one error line per bad line, and, once the server has rosters
(core/mod/*roster*.c), a real stanzad answering a roster get with the
imported items and delivering a broadcast presence to them
(`stanza-bench roster-presence --broadcast`).

stanzactl and stanza-bench come from the same build directory as $STANZAD.
"""

import json
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import assert_sanitizer_clean, sanitizer_env, stanzad_path
from xmpp_util import DOMAIN, NS_CLIENT, c2s_node, import_users, login, q, stanzactl_path

NS_ROSTER = "jabber:iq:roster"
SRC = Path(__file__).resolve().parents[2]
HAS_ROSTERS = any((SRC / "core" / "mod").glob("*roster*.c"))
needs_rosters = pytest.mark.skipif(not HAS_ROSTERS,
                                   reason="the server has no roster module in this tree yet")


def ctl(cfg, *args, timeout=180):
    """Runs stanzactl; returns (rc, stdout, stderr)."""
    p = subprocess.run([stanzactl_path(), "--config", str(cfg), *args], capture_output=True,
                       text=True, timeout=timeout, env=sanitizer_env())
    assert_sanitizer_clean(p.stderr, "stanzactl")
    return p.returncode, p.stdout, p.stderr


def items(db, owner):
    with sqlite3.connect(str(db), timeout=10) as h:
        return dict(h.execute("SELECT contact, subscription FROM roster_items"
                              " WHERE domain = ? AND localpart = ?", (DOMAIN, owner)))


def test_import_rosters_writes_items_and_reports_bad_lines(node):
    n = c2s_node(node, start=False)
    import_users(n, [(f"u{i}", f"pw{i}") for i in range(1, 4)])
    f = n.dir / "rosters.txt"
    f.write_text("# owner contact subscription\n"
                 f"u1@{DOMAIN} u2@{DOMAIN} both\n"
                 f"u1@{DOMAIN} u3@{DOMAIN}\n"                 # default: both
                 f"u1@{DOMAIN} friend@elsewhere.example from\n"
                 "\n"
                 f"u2@{DOMAIN} u1@{DOMAIN} to\n"
                 f"nobody@{DOMAIN} u1@{DOMAIN} both\n"         # line 7: no account
                 f"u3@{DOMAIN} u1@{DOMAIN} sometimes\n"        # line 8: bad subscription
                 f"u3@{DOMAIN} u1@{DOMAIN}/res both\n"         # line 9: not a bare JID
                 f"u3@other.example u1@{DOMAIN} both\n"        # line 10: domain not served
                 f"u3@{DOMAIN}\n")                             # line 11: no contact
    rc, out, err = ctl(n.config, "import-rosters", str(f))
    assert rc == 1, out + err
    assert "imported 4 of 9 roster items" in out, out
    lines = err.strip().splitlines()
    assert [ln.split(": ", 1)[0] for ln in lines] == [f"{f}:{k}" for k in (7, 8, 9, 10, 11)], err
    assert f"no such user nobody@{DOMAIN}" in lines[0]
    assert "unknown subscription 'sometimes'" in lines[1]
    assert "bare JID" in lines[2]
    assert "not served" in lines[3]
    db = n.dir / "data.db"
    assert items(db, "u1") == {f"u2@{DOMAIN}": 3, f"u3@{DOMAIN}": 3,
                               "friend@elsewhere.example": 2}
    assert items(db, "u2") == {f"u1@{DOMAIN}": 1}
    assert items(db, "u3") == {}
    # importing again replaces the items: same rows, exit 0 for good lines
    f.write_text(f"u1@{DOMAIN} u2@{DOMAIN} none\n")
    rc, out, err = ctl(n.config, "import-rosters", str(f))
    assert rc == 0 and "imported 1 of 1" in out, out + err
    assert items(db, "u1")[f"u2@{DOMAIN}"] == 0


@needs_rosters
def test_imported_roster_is_what_a_roster_get_returns(node):
    n = c2s_node(node, start=False)
    import_users(n, [(f"u{i}", f"pw{i}") for i in range(1, 4)])
    f = n.dir / "rosters.txt"
    f.write_text(f"u1@{DOMAIN} u2@{DOMAIN} both\nu1@{DOMAIN} u3@{DOMAIN} from\n"
                 f"u2@{DOMAIN} u1@{DOMAIN} both\nu3@{DOMAIN} u1@{DOMAIN} to\n")
    rc, out, err = ctl(n.config, "import-rosters", str(f))
    assert rc == 0, out + err
    n.start()
    c = login(n, "u1", "pw1")
    try:
        el = c.iq(f"<query xmlns='{NS_ROSTER}'/>")
        assert el.get("type") == "result", ET.tostring(el)
        got = {i.get("jid"): i.get("subscription")
               for i in el.find(q(NS_ROSTER, "query")).findall(q(NS_ROSTER, "item"))}
        assert got == {f"u2@{DOMAIN}": "both", f"u3@{DOMAIN}": "from"}, ET.tostring(el)
        # u2 (both) and u3 (to: u1 is in its roster with 'to') see u1's presence
        c2 = login(n, "u2", "pw2")
        c3 = login(n, "u3", "pw3")
        try:
            for other in (c2, c3):
                other.send("<presence/>")
            c.send("<presence><status>hello</status></presence>")
            for other in (c2, c3):
                other.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence")
                               and (e.get("from") or "").startswith(f"u1@{DOMAIN}")
                               and e.findtext(q(NS_CLIENT, "status")) == "hello",
                               what="u1's broadcast presence")
        finally:
            c2.close()
            c3.close()
    finally:
        c.close()


@needs_rosters
def test_bench_broadcast_mode_against_rosters(node):
    sb = Path(stanzad_path()).parent / "bench" / "stanza-bench"
    if not sb.exists():
        pytest.skip(f"{sb} was not built")
    n = node(start=False, reactors=2, listeners=["admin", "c2s"])
    n.write_config(n.config_text().replace("tls: none", "tls: none, plain_without_tls: true"))
    r = subprocess.run([str(sb), "provision", "--stanzactl", stanzactl_path(), "--config",
                        str(n.config), "--users", "20", "--contacts", "4", "--iterations", "1"],
                       capture_output=True, text=True, timeout=120, env=sanitizer_env())
    assert r.returncode == 0, r.stdout + r.stderr
    n.start()
    out = n.dir / "rp.json"
    r = subprocess.run([str(sb), "roster-presence", "--broadcast", "--port", str(n.ports["c2s"]),
                        "--users", "20", "--contacts", "4", "--login-rate", "100",
                        "--duration", "2", "--presence-rate", "10", "--server-pid",
                        str(n.proc.pid), "--quiet", "--json", str(out)],
                       capture_output=True, text=True, timeout=120, env=sanitizer_env())
    assert_sanitizer_clean(r.stderr, "stanza-bench")
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(out.read_text())
    m = rep["messages"]
    assert rep["broadcast"] is True and rep["logins"]["online"] == 20, r.stdout
    assert rep["roster"] == {"results": 20, "items": 80}, r.stdout
    # 2 s x 10 updates/s, each delivered to 4 contacts, none to the sender
    assert m["sent"] == 80 and m["received"] == 80 and m["lost"] == 0, r.stdout
    assert rep["errors"]["total"] == 0, rep["errors"]
