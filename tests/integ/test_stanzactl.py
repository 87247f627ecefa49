"""stanzactl against a real store: account round trips, the one-line errors
and exit codes, bulk import, and all of it while a stanzad runs on the same
config (two imports writing at once as well).

stanzactl is found beside $STANZAD (same build directory). Both are ASan
builds under meson; every run is checked for a clean stderr.
"""

import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (assert_sanitizer_clean, free_ports, http_request, sanitizer_env,
                      stanzad_path)

PASSWORDS = ("s3cret-Pass", "n3w-Secret", "bulk-pw-")


def stanzactl_path():
    p = Path(stanzad_path()).parent / "stanzactl"
    if not p.exists():
        pytest.skip(f"{p} was not built")
    return str(p)


def write_config(d, storage=None, admin_port=None, hosts=("example.org", "Example.NET")):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    if storage is None:
        (d / "data").mkdir(exist_ok=True)
        storage = d / "data" / "stanzad.db"
    lines = ["node:", "  reactors: 2", "  log_level: info", "hosts:"]
    lines += [f"  - domain: {h}" for h in hosts]
    port = admin_port or free_ports(1)[0]
    lines += ["listen:", f"  - {{ kind: admin, address: 127.0.0.1, port: {port} }}"]
    lines += ["storage:", f"  path: {storage}"]
    cfg = d / "stanzad.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg, Path(storage), port


def ctl(cfg, *args, stdin=b"", timeout=120, check_clean=True):
    """Runs stanzactl; returns (rc, stdout, stderr) as text."""
    p = subprocess.run([stanzactl_path(), "--config", str(cfg), *args], input=stdin,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sanitizer_env(),
                       timeout=timeout)
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if check_clean:
        assert_sanitizer_clean(err, "stanzactl")
    for pw in PASSWORDS:
        assert pw not in out and pw not in err, "a password was printed"
    return p.returncode, out, err


def db_rows(db):
    with sqlite3.connect(str(db), timeout=10) as h:
        return {(r[0], r[1]): r[2:] for r in h.execute(
            "SELECT domain, localpart, sha1_iterations, sha256_iterations, sha512_iterations,"
            " sha256_stored_key FROM accounts")}


def users(cfg, domain):
    rc, out, err = ctl(cfg, "list-users", domain)
    assert rc == 0, err
    return out.split()


# ---- round trips -----------------------------------------------------------


def test_adduser_passwd_deluser_roundtrip(tmp_path):
    cfg, db, _ = write_config(tmp_path)
    pwf = tmp_path / "pw"
    pwf.write_text(PASSWORDS[0] + "\n")
    rc, out, err = ctl(cfg, "--password-file", str(pwf), "adduser", "Alice@Example.ORG")
    assert rc == 0, err
    assert out.strip() == "created alice@example.org"
    # stdin (not a terminal): its first line is the password
    rc, out, err = ctl(cfg, "adduser", "bob@example.net", stdin=PASSWORDS[0].encode() + b"\n")
    assert rc == 0, err
    assert users(cfg, "example.org") == ["alice@example.org"]
    assert users(cfg, "EXAMPLE.net") == ["bob@example.net"]

    rows = db_rows(db)
    assert set(rows) == {("example.org", "alice"), ("example.net", "bob")}
    assert rows[("example.org", "alice")][:3] == (4096, 4096, 4096)
    before = rows[("example.org", "alice")][3]
    assert len(before) == 32

    rc, out, err = ctl(cfg, "passwd", "alice@example.org", stdin=PASSWORDS[1].encode())
    assert rc == 0, err
    assert "password changed for alice@example.org" in out
    after = db_rows(db)[("example.org", "alice")][3]
    assert after != before

    # No plaintext password anywhere in the database files.
    for f in db.parent.iterdir():
        data = f.read_bytes()
        for pw in PASSWORDS[:2]:
            assert pw.encode() not in data, f"password stored in {f.name}"

    rc, out, err = ctl(cfg, "deluser", "alice@example.org")
    assert rc == 0, err
    assert out.strip() == "deleted alice@example.org"
    assert users(cfg, "example.org") == []
    assert set(db_rows(db)) == {("example.net", "bob")}


def test_errors_and_exit_codes(tmp_path):
    cfg, db, _ = write_config(tmp_path)
    ok = PASSWORDS[0].encode()
    assert ctl(cfg, "adduser", "carol@example.org", stdin=ok)[0] == 0

    rc, out, err = ctl(cfg, "adduser", "carol@example.org", stdin=ok)
    assert rc == 1 and err.strip() == "stanzactl: user carol@example.org already exists"

    for bad in ("x@@example.org", "@example.org", "a b@example.org", "example.org",
                "dave@example.org/phone"):
        rc, out, err = ctl(cfg, "adduser", bad, stdin=ok)
        assert rc == 1, bad
        assert "jid-malformed" in err and len(err.strip().splitlines()) == 1, err

    rc, out, err = ctl(cfg, "adduser", "eve@elsewhere.example", stdin=ok)
    assert rc == 1 and "domain elsewhere.example is not served by this config" in err
    assert "example.org" in err  # names the hosts it does serve
    rc, out, err = ctl(cfg, "list-users", "elsewhere.example")
    assert rc == 1 and "not served" in err

    for cmd in ("passwd", "deluser"):
        rc, out, err = ctl(cfg, cmd, "nobody@example.org", stdin=ok)
        assert rc == 1 and err.strip() == "stanzactl: no such user nobody@example.org", err

    # Password problems: none, invalid, missing file.
    rc, out, err = ctl(cfg, "adduser", "frank@example.org", stdin=b"")
    assert rc == 1 and "no password" in err
    rc, out, err = ctl(cfg, "adduser", "frank@example.org", stdin=b"a\x01b\n")
    assert rc == 1 and "password is not valid" in err
    rc, out, err = ctl(cfg, "--password-file", str(tmp_path / "nope"), "adduser",
                       "frank@example.org")
    assert rc == 1 and str(tmp_path / "nope") in err
    assert users(cfg, "example.org") == ["carol@example.org"]

    # Usage errors exit 2.
    assert ctl(cfg)[0] == 2
    assert ctl(cfg, "frobnicate", "x")[0] == 2
    assert ctl(cfg, "adduser")[0] == 2
    assert ctl(cfg, "--iterations", "0", "adduser", "g@example.org")[0] == 2
    p = subprocess.run([stanzactl_path(), "adduser", "g@example.org"], capture_output=True,
                       env=sanitizer_env())
    assert p.returncode == 2 and b"--config" in p.stderr
    p = subprocess.run([stanzactl_path(), "--help"], capture_output=True, env=sanitizer_env())
    assert p.returncode == 0 and b"WEAKER" in p.stdout and b"import-users" in p.stdout


def test_missing_store_directory(tmp_path):
    missing = tmp_path / "no" / "such" / "dir"
    cfg, _, _ = write_config(tmp_path, storage=missing / "stanzad.db")
    rc, out, err = ctl(cfg, "adduser", "a@example.org", stdin=b"pw")
    assert rc == 1
    assert len(err.strip().splitlines()) == 1, err
    assert f"directory {missing} does not exist" in err
    assert not missing.exists()


# ---- import ------------------------------------------------------------------


def make_import(path, n, prefix="user", domain="example.org"):
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"{prefix}{i}@{domain} {PASSWORDS[2]}{i}\n")


def test_import_10k_fast(tmp_path):
    cfg, db, _ = write_config(tmp_path)
    src = tmp_path / "users.txt"
    make_import(src, 10_000)
    t0 = time.monotonic()
    rc, out, err = ctl(cfg, "--iterations", "1", "import-users", str(src))
    took = time.monotonic() - t0
    assert rc == 0, err
    assert "imported 10000 of 10000" in out
    assert took < 30, f"10,000 accounts took {took:.1f}s"
    print(f"import of 10,000 accounts (--iterations 1, ASan build): {took:.2f}s")
    assert len(users(cfg, "example.org")) == 10_000
    rows = db_rows(db)
    assert all(r[:3] == (1, 1, 1) for r in rows.values())

    # Importing the same file again: every line already exists.
    rc, out, err = ctl(cfg, "--iterations", "1", "import-users", str(src))
    assert rc == 1 and "imported 0 of 10000" in out
    assert f"{src}:1: user user0@example.org already exists" in err


def test_import_bad_lines(tmp_path):
    cfg, db, _ = write_config(tmp_path)
    src = tmp_path / "mixed.txt"
    src.write_text("# accounts\n"
                   "\n"
                   "ok1@example.org pw one\n"        # line 3: spaces inside the password
                   "bad@@example.org pw\n"           # 4
                   "nopassword@example.org\n"        # 5
                   "ok2@example.net pw2\r\n"         # 6
                   "ok2@EXAMPLE.net again\n"         # 7: same account
                   "x@unserved.example pw\n"         # 8
                   "ctl@example.org a\x01b\n")       # 9: not an OpaqueString
    rc, out, err = ctl(cfg, "--strict", "import-users", str(src))
    assert rc == 1 and "nothing imported" in err
    assert f"{src}:4: bad JID 'bad@@example.org': jid-malformed" in err
    assert db_rows(db) == {}

    rc, out, err = ctl(cfg, "import-users", str(src))
    assert rc == 1
    lines = err.strip().splitlines()
    assert [ln.split(":")[1] for ln in lines] == ["4", "5", "7", "8", "9"], err
    assert "missing password" in lines[1]
    assert "already exists" in lines[2]
    assert "not served" in lines[3]
    assert "invalid password" in lines[4]
    assert "imported 2 of 7" in out
    assert set(db_rows(db)) == {("example.org", "ok1"), ("example.net", "ok2")}


# ---- with a running stanzad ----------------------------------------------------


class Stanzad:
    def __init__(self, cfg, port, workdir):
        self.port = port
        self.log = open(Path(workdir) / "stanzad.stderr", "wb")
        self.proc = subprocess.Popen([stanzad_path(), "--config", str(cfg)],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env=sanitizer_env(), cwd=str(workdir))
        self.path = Path(workdir) / "stanzad.stderr"
        deadline = time.monotonic() + 15
        while True:
            assert self.proc.poll() is None, f"stanzad exited: {self.path.read_text()}"
            try:
                if http_request(port, "GET", "/healthz", timeout=2)[0] == 200:
                    break
            except (OSError, AssertionError):
                pass
            assert time.monotonic() < deadline, "stanzad not healthy"
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            rc = None
        self.log.close()
        return rc, self.path.read_text(errors="replace")


def test_while_stanzad_runs(tmp_path):
    cfg, db, port = write_config(tmp_path)
    node = Stanzad(cfg, port, tmp_path)
    try:
        a, b = tmp_path / "a.txt", tmp_path / "b.txt"
        make_import(a, 10_000, prefix="a")
        make_import(b, 3_000, prefix="b", domain="example.net")
        results = {}

        def run(name, *args):
            results[name] = ctl(cfg, *args)

        # Two writers at once, on the file the node has configured.
        t0 = time.monotonic()
        ts = [threading.Thread(target=run, args=("a", "--iterations", "1", "import-users",
                                                  str(a))),
              threading.Thread(target=run, args=("b", "--iterations", "1", "import-users",
                                                  str(b)))]
        for t in ts:
            t.start()
        while any(t.is_alive() for t in ts):
            # Single-account commands interleave with the imports.
            rc, _, err = ctl(cfg, "adduser", "live@example.org", stdin=b"pw-live")
            assert rc in (0, 1), err
            if rc == 0:
                assert ctl(cfg, "deluser", "live@example.org")[0] == 0
            time.sleep(0.05)
        for t in ts:
            t.join()
        took = time.monotonic() - t0
        assert results["a"][0] == 0, results["a"][2]
        assert results["b"][0] == 0, results["b"][2]
        assert took < 60, f"concurrent imports took {took:.1f}s"
        assert len(users(cfg, "example.org")) == 10_000
        assert len(users(cfg, "example.net")) == 3_000

        assert ctl(cfg, "adduser", "z@example.org", stdin=b"pw-z")[0] == 0
        assert ctl(cfg, "passwd", "z@example.org", stdin=b"pw-z2")[0] == 0
        assert ctl(cfg, "deluser", "z@example.org")[0] == 0
        assert node.proc.poll() is None, "stanzad died"
        assert http_request(port, "GET", "/healthz")[0] == 200
    finally:
        rc, err = node.stop()
    assert_sanitizer_clean(err)
    assert rc == 0, err[-3000:]
