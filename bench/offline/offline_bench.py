#!/usr/bin/env python3
"""Offline-message path of a running-from-scratch stanzad (XEP-0160):
server CPU per stored and per delivered message, read from /proc of the
server process.

It starts stanzad (--stanzad, a release build for figures) on a fresh
database with --users accounts, then:
  store:    one sender with XEP-0198 streams --messages chat messages
            round robin to the (offline) users and waits for the <a/>
            that counts them all, i.e. until every one is committed;
  login:    every user logs in (PLAIN, bind), without presence;
  deliver:  every user sends initial presence and reads its messages.
CPU of the server (utime + stime) is sampled around each phase. Loopback,
plaintext, 1 sender. Usage:
  bench/offline/offline_bench.py --stanzad build/release/stanzad \\
      --stanzactl build/release/stanzactl --users 1000 --messages 100000
"""
import argparse
import base64
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

DOMAIN = "localhost"
PW = "bench-pw-1"
HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def send(self, data):
        self.s.sendall(data.encode() if isinstance(data, str) else data)

    def read_until(self, token, timeout=60):
        deadline = time.monotonic() + timeout
        while token not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waiting for {token!r}; have {self.buf[-200:]!r}")
            r, _, _ = select.select([self.s], [], [], left)
            if r:
                d = self.s.recv(1 << 20)
                if not d:
                    raise EOFError(self.buf[-300:])
                self.buf += d
        i = self.buf.index(token) + len(token)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def header(self):
        self.send(f"<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' "
                  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
        self.read_until(b"</stream:features>")

    def login(self, user, resource="b"):
        self.header()
        ir = base64.b64encode(f"\0{user}\0{PW}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{ir}</auth>")
        self.read_until(b"<success")
        self.read_until(b">")
        self.header()
        self.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{resource}</resource></bind></iq>")
        self.read_until(b"</iq>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stanzad", default="build/release/stanzad")
    ap.add_argument("--stanzactl", default="build/release/stanzactl")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--reactors", type=int, default=2)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="offline-bench-")
    port, admin = free_port(), free_port()
    cfg = os.path.join(work, "stanzad.yaml")
    with open(cfg, "w") as f:
        f.write(f"node:\n  reactors: {a.reactors}\n  log_level: warn\n"
                f"hosts:\n  - domain: {DOMAIN}\n"
                f"listen:\n  - {{ kind: c2s, address: 127.0.0.1, port: {port}, tls: none, "
                "plain_without_tls: true }\n"
                f"  - {{ kind: admin, address: 127.0.0.1, port: {admin} }}\n"
                f"storage:\n  path: {work}/data.db\n"
                f"limits:\n  max_offline_messages: {max(1000, a.messages // a.users + 1)}\n"
                "  max_unacked_stanzas: 1000000\n")
    users = [f"u{i}" for i in range(a.users)]
    imp = os.path.join(work, "users.txt")
    with open(imp, "w") as f:
        f.write("".join(f"{u}@{DOMAIN} {PW}\n" for u in ["sender", *users]))
    subprocess.run([a.stanzactl, "--config", cfg, "import-users", imp, "--iterations", "1"],
                   check=True, stdout=subprocess.DEVNULL)
    log = open(os.path.join(work, "stderr.log"), "wb")
    srv = subprocess.Popen([a.stanzad, "--config", cfg], stdout=log, stderr=log)
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.05)
        # ---- store
        s = Conn(port)
        s.login("sender")
        s.send("<enable xmlns='urn:xmpp:sm:3'/>")
        s.read_until(b"<enabled")
        c0, t0 = cpu(srv.pid), time.monotonic()
        # Windowed by the acks: at most 2 batches outstanding, so the
        # cross-reactor rings never fill (a full ring bounces with
        # resource-constraint, which is back-pressure, not what is measured).
        h, sent, batch = 0, 0, []

        def wait_ack(target):
            nonlocal h
            while h < target:
                s.read_until(b"<a xmlns='urn:xmpp:sm:3' h='", timeout=600)
                h = int(s.read_until(b"'")[:-1])
            if b"type=\"error\"" in s.buf or b"type='error'" in s.buf:
                raise RuntimeError(f"refused: {s.buf[:300]!r}")
        for i in range(a.messages):
            batch.append(f"<message to='{users[i % a.users]}@{DOMAIN}' type='chat' id='m{i}'>"
                         f"<body>offline message {i}</body></message>")
            if len(batch) == 250 or i == a.messages - 1:
                s.send("".join(batch) + "<r xmlns='urn:xmpp:sm:3'/>")
                sent += len(batch)
                batch = []
                wait_ack(sent - 500)
        wait_ack(a.messages)
        c1, t1 = cpu(srv.pid), time.monotonic()
        s.s.close()
        # ---- login
        conns = []
        for u in users:
            c = Conn(port)
            c.login(u)
            conns.append(c)
        c2 = cpu(srv.pid)
        # ---- deliver
        t2 = time.monotonic()
        for c in conns:
            c.send("<presence/>")
        per = [len(range(k, a.messages, a.users)) for k in range(a.users)]
        got = 0
        for c, n in zip(conns, per):
            for _ in range(n):
                c.read_until(b"urn:xmpp:delay", timeout=600)
            got += n
            c.buf = b""
        c3, t3 = cpu(srv.pid), time.monotonic()
        for c in conns:
            c.s.close()
        print(f"users {a.users}, messages {a.messages}, reactors {a.reactors}")
        print(f"store:   {t1 - t0:.2f} s wall, {c1 - c0:.2f} s server CPU, "
              f"{(c1 - c0) / a.messages * 1e6:.1f} us CPU per stored message, "
              f"{a.messages / (t1 - t0):.0f} msg/s")
        print(f"login:   {c2 - c1:.2f} s server CPU for {a.users} logins")
        print(f"deliver: {t3 - t2:.2f} s wall, {c3 - c2:.2f} s server CPU, "
              f"{(c3 - c2) / got * 1e6:.1f} us CPU per delivered message ({got} delivered)")
    except BaseException:
        log.flush()
        with open(os.path.join(work, "stderr.log"), errors="replace") as f:
            sys.stderr.write(f.read()[-3000:])
        raise
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(60)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    sys.exit(main())
