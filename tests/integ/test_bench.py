"""stanza-bench against a real stanzad: provision accounts through
stanzactl, a short `connect` and a low-rate `one2one`, and wrong passwords
counted by condition. The binaries come from the same build dir as $STANZAD
(bench/stanza-bench, stanzactl). Every run is bounded by its own options
and by a subprocess timeout."""

import json
import subprocess
from pathlib import Path

import pytest

from conftest import assert_sanitizer_clean, sanitizer_env, stanzad_path

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


def bench(n, scenario, *args, timeout=120):
    """Runs one scenario; returns (JSON report, stdout)."""
    out = n.dir / f"{scenario}.json"
    cmd = [tool("bench/stanza-bench"), scenario, "--port", str(n.ports["c2s"]),
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
