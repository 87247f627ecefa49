"""stanza-bench against a real stanzad: provision accounts through
stanzactl, a short `connect` and a low-rate `one2one`, and wrong passwords
counted by condition; the same over STARTTLS and Direct TLS (TLS 1.3 and
1.2, SCRAM with and without tls-exporter channel binding, certificate
verification on request). The binaries come from the same build dir as $STANZAD
(bench/stanza-bench, stanzactl). Every run is bounded by its own options
and by a subprocess timeout. Also: one2one with stream management
(XEP-0198, --sm) against stanzad, and one2one against bench/sb-reflector,
the trivial peer that measures the tool's own cost."""

import csv
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_sanitizer_clean, free_ports, sanitizer_env, stanzad_path
from xmpp_util import c2s_node

USERS = 200


def tool(name):
    p = Path(stanzad_path()).parent / name
    if not p.exists():
        pytest.skip(f"{p} was not built")
    return str(p)


def start_node(node):
    """stanzad with 2 reactors, an admin listener and a plaintext c2s
    listener that offers PLAIN as well (plain_without_tls)."""
    n = node(start=False, reactors=2, listeners=["admin", "c2s"])
    n.write_config(n.config_text().replace("tls: none", "tls: none, plain_without_tls: true"))
    n.start()
    return n


def provision(n, users=USERS):
    r = subprocess.run(
        [tool("bench/stanza-bench"), "provision", "--stanzactl", tool("stanzactl"),
         "--config", str(n.config), "--users", str(users), "--iterations", "1"],
        capture_output=True, text=True, timeout=120, env=sanitizer_env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert_sanitizer_clean(r.stderr, "stanza-bench provision")


def bench(n, scenario, *args, timeout=120, port=None):
    """Runs one scenario; returns (JSON report, stdout)."""
    out = n.dir / f"{scenario}.json"
    port = port if port is not None else n.ports["c2s"]
    cmd = [tool("bench/stanza-bench"), scenario, "--port", str(port),
           "--server-pid", str(n.proc.pid), "--json", str(out), "--quiet", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=sanitizer_env())
    assert_sanitizer_clean(r.stderr, "stanza-bench")
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    rep = json.loads(out.read_text())
    assert rep["tool"] == "stanza-bench" and rep["scenario"] == scenario
    return rep, r.stdout


def test_connect_and_one2one(node):
    n = start_node(node)
    provision(n)

    rep, text = bench(n, "connect", "--users", str(USERS), "--login-rate", "200",
                      "--duration", "2", "--threads", "2")
    lg = rep["logins"]
    assert lg["online"] == USERS and lg["failed"] == 0 and lg["dropped"] == 0, text
    assert lg["launched"] == lg["connected"] == USERS
    assert lg["latency_us"]["count"] == USERS
    lat = lg["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]
    assert rep["errors"]["total"] == 0, rep["errors"]
    assert rep["server"]["pid"] == n.proc.pid
    assert rep["server"]["rss_kib_after_logins"] > 0
    assert "login latency" in text and "errors                 none" in text
    # the sessions ended with the tool
    n.wait_idle(timeout=30)

    rep, text = bench(n, "one2one", "--users", str(USERS), "--login-rate", "400",
                      "--duration", "3", "--msg-rate", "200", "--threads", "2",
                      "--mech", "SCRAM-SHA-1", "--src", "127.0.0.2-127.0.0.9")
    m = rep["messages"]
    assert rep["logins"]["online"] == USERS, text
    assert m["planned"] == 600 and m["sent"] == 600, text
    assert m["sent"] == m["received"] + m["lost"]
    assert m["lost"] == 0 and m["late"] == 0 and m["bounced"] == 0, text
    assert m["latency_us"]["count"] == m["received"]
    assert 0 < m["latency_us"]["p50"] <= m["latency_us"]["p99"] <= m["latency_us"]["max"]
    assert rep["errors"]["total"] == 0, rep["errors"]
    assert rep["server"]["cpu_s_messages"] >= 0
    n.wait_idle(timeout=30)

    # PLAIN, one thread
    rep, text = bench(n, "one2one", "--users", "20", "--login-rate", "100", "--duration", "1",
                      "--msg-rate", "50", "--mech", "PLAIN")
    m = rep["messages"]
    assert rep["logins"]["online"] == 20 and m["sent"] == 50 and m["lost"] == 0, text
    n.wait_idle(timeout=30)

    # --lazy-recv: arrivals wait for the tool's next tick (20 ms here), so
    # nothing is lost, and each round trip of a login waits for a tick
    rep, text = bench(n, "one2one", "--users", "20", "--login-rate", "100", "--duration", "1",
                      "--msg-rate", "50", "--tick-us", "20000", "--lazy-recv")
    m = rep["messages"]
    assert rep["logins"]["online"] == 20 and m["sent"] == 50 and m["lost"] == 0, text
    assert rep["logins"]["latency_us"]["p50"] >= 60000, rep["logins"]["latency_us"]
    n.wait_idle(timeout=30)
    n.stop_clean()


def test_errors_counted_by_condition(node):
    n = start_node(node)
    provision(n, users=10)
    # wrong passwords: every login fails with <not-authorized/>
    rep, text = bench(n, "connect", "--users", "6", "--login-rate", "100", "--duration", "0",
                      "--pass-pattern", "wrong{N}", "--mech", "SCRAM-SHA-256")
    assert rep["logins"]["online"] == 0 and rep["logins"]["failed"] == 6, text
    assert rep["errors"]["by_condition"].get("sasl:not-authorized") == 6, rep["errors"]
    # unknown users (never provisioned) fail the same way
    rep, text = bench(n, "connect", "--users", "4", "--first", "1000", "--login-rate", "100",
                      "--duration", "0", "--mech", "PLAIN")
    assert rep["logins"]["failed"] == 4, text
    assert rep["errors"]["by_condition"].get("sasl:not-authorized") == 4, rep["errors"]
    # an odd user out has no partner: the pair sends every message
    rep, text = bench(n, "one2one", "--users", "3", "--login-rate", "100", "--duration", "1",
                      "--msg-rate", "20")
    m = rep["messages"]
    assert m["sent"] == 20 and m["sent"] == m["received"] + m["lost"] and m["lost"] == 0, text
    n.wait_idle(timeout=30)
    n.stop_clean()


def assert_clean_logins(rep, text, users):
    lg = rep["logins"]
    assert lg["online"] == users and lg["failed"] == 0 and lg["dropped"] == 0, text
    assert lg["launched"] == lg["connected"] == users
    assert rep["errors"]["total"] == 0, rep["errors"]


def test_tls_connect_and_one2one(node):
    """connect and one2one over STARTTLS and Direct TLS: every login
    succeeds, no error, no message lost."""
    n = c2s_node(node, reactors=2)
    users = 100
    provision(n, users=users)
    starttls, direct = n.xmpp["starttls"], n.xmpp["direct"]

    # STARTTLS (the listener requires it), TLS 1.3, SCRAM-SHA-256 with gs2 flag n
    rep, text = bench(n, "connect", "--tls", "starttls", "--users", str(users),
                      "--login-rate", "200", "--duration", "1", "--threads", "2", port=starttls)
    assert_clean_logins(rep, text, users)
    assert rep["tls"] is True and rep["tls_mode"] == "starttls" and rep["tls_version"] == "1.3"
    assert "STARTTLS, TLS 1.3" in text
    n.wait_idle(timeout=30)

    # Direct TLS (XEP-0368, ALPN xmpp-client), the certificate verified
    # against itself, SCRAM-SHA-256-PLUS with tls-exporter
    rep, text = bench(n, "connect", "--tls", "direct", "--ca", str(n.cert),
                      "--mech", "SCRAM-SHA-256-PLUS", "--users", str(users),
                      "--login-rate", "200", "--duration", "1", "--threads", "2", port=direct)
    assert_clean_logins(rep, text, users)
    assert rep["tls_mode"] == "direct" and rep["mechanism"] == "SCRAM-SHA-256-PLUS"
    n.wait_idle(timeout=30)

    # one2one over Direct TLS and over STARTTLS with TLS 1.2
    for port, extra in ((direct, ["--tls", "direct"]),
                        (starttls, ["--tls", "starttls", "--tls-version", "1.2",
                                    "--mech", "SCRAM-SHA-1"])):
        rep, text = bench(n, "one2one", *extra, "--users", str(users), "--login-rate", "200",
                          "--duration", "2", "--msg-rate", "200", "--threads", "2", port=port)
        assert_clean_logins(rep, text, users)
        m = rep["messages"]
        assert m["planned"] == 400 and m["sent"] == 400, text
        assert m["sent"] == m["received"] + m["lost"]
        assert m["lost"] == 0 and m["late"] == 0 and m["bounced"] == 0, text
        n.wait_idle(timeout=30)
    n.stop_clean()


def test_tls_errors_counted(node):
    """TLS failures are counted by condition, never hang a login."""
    n = c2s_node(node, reactors=2)
    provision(n, users=10)
    # the certificate is for localhost: another domain fails verification
    rep, text = bench(n, "connect", "--tls", "direct", "--ca", str(n.cert), "--domain",
                      "example.org", "--users", "3", "--login-rate", "100", "--duration", "0",
                      port=n.xmpp["direct"])
    assert rep["logins"]["failed"] == 3, text
    assert rep["errors"]["by_condition"].get("tls:CERTIFICATE_VERIFY_FAILED") == 3, text
    # no TLS against a listener that requires STARTTLS
    rep, text = bench(n, "connect", "--users", "2", "--login-rate", "100", "--duration", "0",
                      port=n.xmpp["starttls"])
    assert rep["errors"]["by_condition"].get("client:tls-required") == 2, text
    # STARTTLS asked of a listener that does not offer it
    rep, text = bench(n, "connect", "--tls", "starttls", "--users", "2", "--login-rate", "100",
                      "--duration", "0", port=n.xmpp["plain"])
    assert rep["errors"]["by_condition"].get("client:starttls-not-offered") == 2, text
    # a -PLUS mechanism without TLS 1.3 is a usage error
    r = subprocess.run([tool("bench/stanza-bench"), "connect", "--port", str(n.xmpp["direct"]),
                        "--tls", "direct", "--tls-version", "1.2", "--mech",
                        "SCRAM-SHA-256-PLUS", "--users", "1", "--quiet"],
                       capture_output=True, text=True, timeout=30, env=sanitizer_env())
    assert r.returncode == 2 and "TLS 1.3" in r.stderr, r.stderr
    n.wait_idle(timeout=30)
    n.stop_clean()


def run_file(n, path, *args, timeout=120):
    """`stanza-bench run FILE` (the command line overrides the file's port);
    returns (JSON report, stdout)."""
    out = n.dir / f"{Path(path).stem}.json"
    cmd = [tool("bench/stanza-bench"), "run", str(path), "--port", str(n.ports["c2s"]),
           "--server-pid", str(n.proc.pid), "--json", str(out), "--quiet", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=sanitizer_env())
    assert_sanitizer_clean(r.stderr, "stanza-bench")
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    return json.loads(out.read_text()), r.stdout


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, f"{path} has no rows"
    assert list(rows[0]) == ["t_s", "phase", "connected", "logins_per_s", "sent_per_s",
                             "received_per_s", "p50_ms", "p99_ms", "errors"]
    t = [float(r["t_s"]) for r in rows]
    assert t == sorted(t) and len(set(round(x) for x in t)) == len(t), t
    for r in rows:
        assert r["phase"] in ("ramp", "hold", "messages", "drain"), r
        assert 0 <= float(r["p50_ms"]) <= float(r["p99_ms"]) or float(r["p99_ms"]) == 0, r
    return rows


def test_run_scenario_files_and_csv(node):
    n = start_node(node)
    provision(n, users=40)

    # one2one from a file, with its per-second series
    f = n.dir / "o2o.yaml"
    f.write_text("# one2one from a file\nscenario: one2one\nport: 1\nusers: 40\n"
                 "login_rate: 200\nduration: 2\nmsg_rate: 100\nthreads: 2\n")
    series = n.dir / "o2o.csv"
    rep, text = run_file(n, f, "--csv", str(series))
    m = rep["messages"]
    assert rep["scenario"] == "one2one" and rep["logins"]["online"] == 40, text
    assert m["planned"] == 200 and m["sent"] == m["received"] == 200 and m["lost"] == 0, text
    assert rep["errors"]["total"] == 0, rep["errors"]
    rows = read_csv(series)
    assert int(rows[-1]["connected"]) == 40, rows
    assert any(r["phase"] == "messages" and float(r["sent_per_s"]) > 0 for r in rows), rows
    assert sum(float(r["received_per_s"]) for r in rows) > 100, rows
    n.wait_idle(timeout=30)

    # roster-presence in 2 processes (--procs from the file): the roster
    # gets are answered (core/mod/mod_roster.c) with the users' empty
    # rosters, the directed presences all arrive
    f = n.dir / "rp.yaml"
    f.write_text("scenario: roster-presence\nusers: 40\nlogin_rate: 200\nduration: 2\n"
                 "contacts: 3\npresence_rate: 20\nprocs: 2\nsrc: 127.0.0.2-127.0.0.5\n")
    series = n.dir / "rp.csv"
    rep, text = run_file(n, f, "--csv", str(series))
    m = rep["messages"]
    assert rep["scenario"] == "roster-presence" and rep["procs"] == 2, text
    assert rep["contacts"] == 3 and rep["logins"]["online"] == 40, text
    assert rep["logins"]["latency_us"]["count"] == 40
    # 2 s x 20 updates/s x 3 contacts
    assert m["planned"] == 40 and m["sent"] == m["received"] == 120 and m["lost"] == 0, text
    assert m["latency_us"]["count"] == 120
    assert rep["errors"]["total"] == 0, rep["errors"]
    assert rep["roster"] == {"results": 40, "items": 0}, text
    rows = read_csv(series)
    assert int(rows[-1]["connected"]) == 40, rows
    assert not list(n.dir.glob("rp.csv.*")), "the processes' parts are merged and removed"
    n.wait_idle(timeout=30)

    # bench/plot draws the series when matplotlib is there
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pass
    else:
        png = n.dir / "rp.png"
        plot = Path(__file__).resolve().parents[2] / "bench" / "plot"
        r = subprocess.run([sys.executable, str(plot), str(series), "-o", str(png)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a bad file: exit 2 and one line naming the file, the line and the key
    f = n.dir / "bad.yaml"
    f.write_text("scenario: connect\nusers: 10\nduration: 1\nmsg_rate: 5\n")
    r = subprocess.run([tool("bench/stanza-bench"), "run", str(f)], capture_output=True,
                       text=True, timeout=30, env=sanitizer_env())
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr == f"stanza-bench: {f}:4: msg_rate: not a key of scenario connect (line 1)\n"
    n.stop_clean()


def test_provision_in_band(node):
    """provision --xep0077: accounts registered in-band on a server that
    allows it, a second run finds them existing, and they log in; on a host
    without registration every account fails with its condition."""
    n = node(start=False, reactors=2, listeners=["admin", "c2s"],
             limits={"register_per_source_per_hour": 1000})
    text = n.config_text().replace("tls: none", "tls: none, plain_without_tls: true")
    text = text.replace("- domain: localhost", "- domain: localhost\n    register: true")
    assert "register: true" in text, text
    n.write_config(text)
    n.start()
    sb = tool("bench/stanza-bench")
    cmd = [sb, "provision", "--xep0077", "--port", str(n.ports["c2s"]), "--users", "30",
           "--src", "127.0.0.2-127.0.0.5"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    assert "30 created, 0 existed, 0 failed" in r.stderr, r.stderr
    r = subprocess.run(cmd[:-4] + ["--users", "35"], capture_output=True, text=True,
                       timeout=120, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    assert "5 created, 30 existed, 0 failed" in r.stderr, r.stderr
    rep, _ = bench(n, "connect", "--users", "35", "--login-rate", "200", "--duration", "1")
    assert rep["logins"]["online"] == 35, rep["logins"]
    # Another domain of the same server without registration: refused.
    r = subprocess.run([sb, "provision", "--xep0077", "--port", str(n.ports["c2s"]),
                        "--users", "3", "--domain", "nowhere.test"],
                       capture_output=True, text=True, timeout=60, env=sanitizer_env())
    assert r.returncode == 1
    assert "3 failed" in r.stderr and "stream:host-unknown" in r.stderr, r.stderr
    n.stop_clean()


def test_sm_enable(node):
    """one2one with --sm: stanzad offers XEP-0198 after SASL, every session
    enables it after the bind, the tool counts the server's stanzas and
    answers each <r/> with <a h/>, plus one final <a/> per session at the
    end; nothing is lost, and no SM error is counted."""
    n = start_node(node)
    users = 40
    provision(n, users=users)
    rep, text = bench(n, "one2one", "--sm", "--users", str(users), "--login-rate", "200",
                      "--duration", "2", "--msg-rate", "200", "--threads", "2")
    assert_clean_logins(rep, text, users)
    sm = rep["sm"]
    assert sm["requested"] is True, sm
    assert sm["enabled"] == users and sm["failed"] == 0 and sm["unsupported"] == 0, text
    m = rep["messages"]
    assert m["planned"] == 400 and m["sent"] == 400, text
    assert m["sent"] == m["received"] + m["lost"]
    assert m["lost"] == 0 and m["late"] == 0 and m["bounced"] == 0, text
    # stanzad asks for an ack after 8 unacknowledged stanzas (net/sm.h), and
    # each session receives 10 messages: at least one <r/> each; every <r/>
    # is answered, and each session sends a final ack at the end
    assert sm["requests_received"] >= users, sm
    assert sm["acks_sent"] == sm["requests_received"] + users, sm
    assert "stream management" in text and f"enabled {users}, failed 0" in text, text
    n.wait_idle(timeout=30)

    # without --sm nothing of it happens
    rep, text = bench(n, "one2one", "--users", "10", "--login-rate", "200", "--duration", "1",
                      "--msg-rate", "20")
    assert rep["sm"] == {"requested": False, "enabled": 0, "failed": 0, "unsupported": 0,
                         "requests_received": 0, "acks_sent": 0, "acks_received": 0}, rep["sm"]
    assert "stream management" not in text
    n.wait_idle(timeout=30)
    n.stop_clean()


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing listens on {port} after {timeout}s")
            time.sleep(0.05)


def test_reflector_one2one(tmp_path):
    """bench/sb-reflector: any PLAIN login, bind, messages forwarded to the
    bare JID as they are. A short one2one against it loses nothing; the
    reflector counts what it forwarded and exits 0 on SIGTERM."""
    (port,) = free_ports(1)
    err = open(tmp_path / "reflector.err", "wb")
    proc = subprocess.Popen([tool("bench/sb-reflector"), "--port", str(port)],
                            stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=sanitizer_env())
    try:
        wait_port(port, proc)
        out = tmp_path / "o2o.json"
        cmd = [tool("bench/stanza-bench"), "one2one", "--port", str(port), "--mech", "PLAIN",
               "--users", "20", "--login-rate", "200", "--duration", "2", "--msg-rate", "200",
               "--server-pid", str(proc.pid), "--json", str(out), "--quiet"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=sanitizer_env())
        assert_sanitizer_clean(r.stderr, "stanza-bench")
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
        rep = json.loads(out.read_text())
        assert_clean_logins(rep, r.stdout, 20)
        m = rep["messages"]
        assert m["planned"] == 400 and m["sent"] == m["received"] == 400, r.stdout
        assert m["lost"] == 0 and m["late"] == 0 and m["bounced"] == 0, r.stdout
        assert rep["server"]["pid"] == proc.pid
        assert rep["client"]["cpu_us_per_message"] >= 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            rc = None
        err.close()
    text = (tmp_path / "reflector.err").read_text(errors="replace")
    assert_sanitizer_clean(text, "sb-reflector")
    assert rc == 0, f"sb-reflector exited with {rc}:\n{text[-4000:]}"
    assert "logins=20 forwarded=400 dropped=0" in text, text
