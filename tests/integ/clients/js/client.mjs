// xmpp.js (@xmpp/client, pinned in package.json) as a user runs it, for
// tests/integ/test_clients.py. Defaults everywhere (SASL mechanism order,
// STARTTLS, stream management) except what a user must give: the service
// URL (xmpp://host:port for STARTTLS, xmpps://host:port for Direct TLS),
// the domain, username and password. The test's self-signed certificate is
// trusted the Node.js way, NODE_EXTRA_CA_CERTS in the environment, so
// certificate verification stays on.
//
// Steps, each one JSON line on stdout (../README.md): connect, log in,
// bind, initial presence, roster get, a message to --peer, the answer from
// --peer (--expect), disconnect. The whole run has a deadline of
// 4 x --timeout seconds; exit status 0 only when every step asked for
// worked.
//
// Usage: node client.mjs --service URL --domain D --username U
//        --password P [--peer JID --body B --expect E] [--timeout S]
import { parseArgs } from "node:util";
import { client, xml } from "@xmpp/client";

const { values: a } = parseArgs({
  options: {
    service: { type: "string" },
    domain: { type: "string" },
    username: { type: "string" },
    password: { type: "string" },
    peer: { type: "string" },
    body: { type: "string", default: "hello" },
    expect: { type: "string", default: "hello back" },
    timeout: { type: "string", default: "20" },
  },
});
const timeoutMs = Number(a.timeout) * 1000;

function emit(ev, fields = {}) {
  process.stdout.write(JSON.stringify({ ev, ...fields }) + "\n");
}

function within(promise, what) {
  let t;
  const timer = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`timeout: ${what}`)), timeoutMs);
  });
  return Promise.race([promise, timer]).finally(() => clearTimeout(t));
}

// @xmpp/iq 0.14 rejects a request's promise as soon as an error answer
// arrives, but awaits only after its send() has resolved: an error answer
// that comes first (loopback, a server answering at once) is an
// unhandled rejection for a moment, which ends a Node.js process by
// default. The promise is awaited right after, so the request still
// fails as it should; the rejection is only noted on stderr.
process.on("unhandledRejection", (err) => {
  process.stderr.write(`xmpp.js: rejection handled late: ${err?.name}: ${err?.message}\n`);
});

// The whole run is bounded, whatever the library does.
setTimeout(() => {
  emit("timeout");
  process.exit(1);
}, 4 * timeoutMs).unref();

const xmpp = client({
  service: a.service,
  domain: a.domain,
  username: a.username,
  password: a.password,
});

// What the library chose by itself, from what it sends: the <auth/>
// mechanism and the gs2 header of a SCRAM initial response.
const attempts = [];
const serverSaid = [];
xmpp.on("send", (el) => {
  if (el.is("auth", "urn:ietf:params:xml:ns:xmpp-sasl")) {
    const mech = el.attrs.mechanism;
    let gs2 = "";
    if (mech.startsWith("SCRAM")) {
      const raw = Buffer.from(el.text(), "base64").toString("latin1");
      gs2 = raw.split(",").slice(0, 2).join(",") + ",";
    }
    attempts.push({ mech, gs2 });
  }
});
xmpp.on("nonza", (el) => {
  if (el.attrs.xmlns === "urn:ietf:params:xml:ns:xmpp-sasl") {
    serverSaid.push(el.toString().slice(0, 300));
  }
});
xmpp.on("error", (err) => {
  process.stderr.write(`xmpp.js error: ${err?.stack ?? err}\n`);
});

const inbox = [];
let wake = null;
xmpp.on("stanza", (st) => {
  if (st.is("message") && st.attrs.type !== "error") {
    inbox.push(st);
    if (wake) wake();
  }
});

function tlsVersion() {
  // xmpp.socket is @xmpp/tls's Socket (Direct TLS or after STARTTLS),
  // whose .socket is Node's TLSSocket.
  return xmpp.socket?.socket?.getProtocol?.() ?? null;
}

async function main() {
  const t0 = Date.now();
  let address;
  try {
    address = await within(xmpp.start(), "login");
  } catch (err) {
    emit("login_failed", { why: String(err?.condition ?? err?.message ?? err),
      attempts, server: serverSaid.slice(-4), tls: tlsVersion() });
    await xmpp.stop().catch(() => {});
    return 1;
  }
  const last = attempts[attempts.length - 1] ?? {};
  emit("bound", { jid: address.toString(), mech: last.mech ?? null, gs2: last.gs2 ?? null,
    attempts, tls: tlsVersion(), secs: (Date.now() - t0) / 1000 });

  await xmpp.send(xml("presence"));
  emit("presence");

  // The roster get of RFC 6121 §2.2, through the library's iq caller.
  try {
    const r = await within(xmpp.iqCaller.request(
      xml("iq", { type: "get" }, xml("query", { xmlns: "jabber:iq:roster" }))), "roster");
    const q = r.getChild("query", "jabber:iq:roster");
    emit("roster", { type: r.attrs.type, ns: q ? "jabber:iq:roster" : null,
      items: q ? q.getChildren("item").length : 0 });
  } catch (err) {
    if (err?.name === "StanzaError") {
      emit("roster", { type: "error", cond: err.condition, etype: err.type });
    } else {
      emit("roster", { type: "timeout", why: String(err?.message ?? err) });
    }
  }

  let rc = 0;
  if (a.peer) {
    await xmpp.send(xml("message", { to: a.peer, type: "chat" }, xml("body", {}, a.body)));
    emit("sent", { to: a.peer });
    const deadline = Date.now() + timeoutMs;
    let got = null;
    while (!got && Date.now() < deadline) {
      const st = inbox.shift();
      if (st) {
        if (st.getChildText("body") === a.expect) got = st;
        continue;
      }
      await new Promise((res) => {
        wake = res;
        setTimeout(res, 100);
      });
    }
    if (got) {
      emit("received", { frm: got.attrs.from, body: got.getChildText("body") });
    } else {
      emit("receive_timeout");
      rc = 1;
    }
  }

  const sm = xmpp.streamManagement?.enabled ?? null; // XEP-0198, on by default
  await within(xmpp.stop(), "disconnect");
  emit("closed", { sm });
  return rc;
}

main().then(
  (rc) => process.exit(rc),
  (err) => {
    emit("crashed", { why: String(err?.stack ?? err) });
    process.exit(1);
  },
);
