// Shared pieces of twotick's @xmpp/client interoperability scripts.
//
// Each script exits 0 only when its scenario happened; otherwise it prints
// "FAIL: <reason>" on standard error and exits 1. Progress lines go to
// standard output, prefixed with the script's name.

import { parseArgs } from "node:util";
import readline from "node:readline";

import { client, xml } from "@xmpp/client";

export { xml };

// The server's certificate is self-signed; the tests check the protocol,
// not the PKI. @xmpp/starttls takes no TLS options, and Node reads this
// variable at every tls.connect, so setting it here covers the upgrade.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = "0";

// Mechanisms that keep the password off the wire. @xmpp/client 0.14
// implements SCRAM-SHA-1 only; the others are listed so that a newer
// release that adds them is accepted too.
const SCRAM = [
  "SCRAM-SHA-256-PLUS",
  "SCRAM-SHA-256",
  "SCRAM-SHA-1-PLUS",
  "SCRAM-SHA-1",
];

export class Failure extends Error {}

export function reporter(name) {
  return (...parts) => console.log(`${name}:`, ...parts);
}

// parseOptions reads the options every script takes, plus extra ones
// given in node:util parseArgs form.
export function parseOptions(extra = {}) {
  const { values } = parseArgs({
    options: {
      jid: { type: "string" },
      password: { type: "string" },
      host: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "5222" },
      peer: { type: "string" },
      timeout: { type: "string", default: "30" },
      ...extra,
    },
  });
  for (const required of ["jid", "password", "peer"]) {
    if (!values[required]) {
      console.error(`usage: --${required} is required`);
      process.exit(2);
    }
  }
  return { ...values, timeout: Number(values.timeout) * 1000 };
}

// deadline returns a function that tells the milliseconds left.
export function deadline(ms) {
  const end = Date.now() + ms;
  return () => Math.max(100, end - Date.now());
}

// withTimeout rejects with a Failure naming what did not happen in time.
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new Failure(`${what} within ${Math.round(ms / 1000)}s`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const NS_SM = "urn:xmpp:sm:3";
const NS_STREAMS = "http://etherx.jabber.org/streams";

// watchStreamManagement returns a promise that resolves to true when the
// server enables XEP-0198, and to false when it refuses or never offers it.
// @xmpp/client goes online at resource binding, before it enables stream
// management, so a script that needs it must wait for this as well.
function watchStreamManagement(xmpp) {
  let offered = false;
  return new Promise((resolve) => {
    xmpp.on("nonza", (el) => {
      if (el.is("enabled", NS_SM)) resolve(true);
      else if (el.is("failed", NS_SM)) resolve(false);
      else if (el.is("features", NS_STREAMS)) {
        offered ||= Boolean(el.getChild("sm", NS_SM));
        const final = !el.getChild("mechanisms") && !el.getChild("starttls");
        if (final && !offered) resolve(false);
      }
    });
  });
}

// newClient returns a client that logs in only with SCRAM over STARTTLS,
// an object recording the mechanism it used, and a promise of whether
// stream management got enabled.
export function newClient({ jid, password, host, port }) {
  const [local, domain] = jid.split("@");
  const auth = { mechanism: null };
  const xmpp = client({
    service: `xmpp://${host}:${port}`,
    domain,
    resource: `xmppjs-${process.pid}`,
    credentials: async (authenticate, mechanisms, _fast, entity) => {
      if (!entity.isSecure()) {
        throw new Failure("server offered SASL before TLS");
      }
      const mechanism = SCRAM.find((m) => mechanisms.includes(m));
      if (!mechanism) {
        throw new Failure(`no SCRAM mechanism among ${mechanisms.join(", ")}`);
      }
      auth.mechanism = mechanism;
      await authenticate({ username: local, password }, mechanism);
    },
  });
  // A failed login must end the script, not retry in the background.
  xmpp.reconnect.stop();
  return { xmpp, auth, smEnabled: watchStreamManagement(xmpp) };
}

// login starts the client and checks that it is on TLS with SCRAM.
export async function login({ xmpp, auth }, ms, say) {
  const address = await withTimeout(xmpp.start(), ms, "no session");
  if (!xmpp.isSecure()) {
    throw new Failure("session started without TLS");
  }
  if (!auth.mechanism) {
    throw new Failure("session started without SASL authentication");
  }
  const protocol = xmpp.socket.socket?.getProtocol?.() ?? "TLS";
  say(`logged in as ${address} with ${auth.mechanism} over ${protocol}`);
  return address;
}

// requireStreamManagement waits until XEP-0198 is enabled on c's stream.
export async function requireStreamManagement(c, ms) {
  const enabled = await withTimeout(c.smEnabled, ms, "no stream management answer");
  if (!enabled || !c.xmpp.streamManagement.enabled) {
    throw new Failure("server did not enable XEP-0198 stream management");
  }
}

// fetchRoster asks for the roster (RFC 6121 § 2.1.3) and checks the answer.
export async function fetchRoster(xmpp, ms, say) {
  const query = await withTimeout(
    xmpp.iqCaller.get(xml("query", { xmlns: "jabber:iq:roster" })),
    ms,
    "no roster",
  );
  if (!query || !query.is("query", "jabber:iq:roster")) {
    throw new Failure("roster answer carries no roster query");
  }
  say(`roster has ${query.getChildren("item").length} items`);
}

// stdinLines returns a function that resolves to the next line of
// standard input, or rejects when standard input closes.
export function stdinLines() {
  const rl = readline.createInterface({ input: process.stdin });
  const lines = [];
  const waiting = [];
  let closed = false;
  rl.on("line", (line) => {
    const w = waiting.shift();
    if (w) w.resolve(line.trim());
    else lines.push(line.trim());
  });
  rl.on("close", () => {
    closed = true;
    for (const w of waiting.splice(0)) {
      w.reject(new Failure("standard input closed"));
    }
  });
  const next = () =>
    new Promise((resolve, reject) => {
      if (lines.length > 0) resolve(lines.shift());
      else if (closed) reject(new Failure("standard input closed"));
      else waiting.push({ resolve, reject });
    });
  next.close = () => rl.close();
  return next;
}

// bare strips the resource from a JID string.
export function bare(jid) {
  return String(jid ?? "").split("/")[0];
}

// run calls main(say) and turns its outcome into the exit status.
export async function run(name, main) {
  const say = reporter(name);
  try {
    await main(say);
    say("OK");
    process.exit(0);
  } catch (err) {
    // A protocol error (SASLError, XMPPError) reads best as name and text;
    // anything else is a bug in the script, where the stack helps.
    const protocol = err instanceof Failure || /Error$/.test(err?.name ?? "") &&
      !(err instanceof TypeError || err instanceof ReferenceError);
    const reason = err instanceof Failure ? err.message
      : protocol ? `${err.name}: ${err.message}` : err?.stack ?? err;
    console.error(`${name}: FAIL: ${reason}`);
    process.exit(1);
  }
}
