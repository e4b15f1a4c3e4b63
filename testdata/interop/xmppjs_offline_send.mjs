// @xmpp/client sender of twotick's offline delivery interoperability test.
//
// Logs in with SCRAM over STARTTLS and XEP-0198 stream management, then
// sends --count chat messages to --peer, who is offline, each with a
// XEP-0184 receipt request. It waits until the server has acknowledged
// every one with XEP-0198 <a/> (the single check) and prints
// "sent N acknowledged": the test starts the receiver only then. It stays
// online until a <received/> receipt has come back for every message (the
// double check). Exit status 0 means all of that happened within
// --timeout seconds, with no receipt for an id it never sent.

import { randomBytes } from "node:crypto";

import {
  Failure,
  bare,
  deadline,
  login,
  newClient,
  parseOptions,
  requireStreamManagement,
  run,
  withTimeout,
  xml,
} from "./xmppjs_common.mjs";

const NAME = "xmpp.js-offline";
const RECEIPTS = "urn:xmpp:receipts";

// settle returns a promise and the function that checks whether it is met.
function waitUntil(check) {
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  return { promise, poke: () => check() && resolve() };
}

async function scenario(opts, say) {
  const left = deadline(opts.timeout);
  const count = Number(opts.count);
  const c = newClient(opts);
  const { xmpp } = c;
  const sm = xmpp.streamManagement;

  const nonce = randomBytes(4).toString("hex");
  const ids = Array.from({ length: count }, (_, i) => `off-${nonce}-${i + 1}`);
  const acked = new Set();
  const receipts = new Set();
  const strangers = [];

  const allAcked = waitUntil(() => acked.size === count);
  const allReceipts = waitUntil(() => receipts.size === count);
  sm.on("ack", (stanza) => {
    if (ids.includes(stanza.attrs.id)) acked.add(stanza.attrs.id);
    allAcked.poke();
  });
  xmpp.on("stanza", (stanza) => {
    const received = stanza.is("message") && stanza.getChild("received", RECEIPTS);
    if (!received || bare(stanza.attrs.from) !== opts.peer) return;
    const id = received.attrs.id;
    if (ids.includes(id)) receipts.add(id);
    else strangers.push(id);
    allReceipts.poke();
  });
  xmpp.on("error", (err) => say(`client error: ${err.message}`));

  await login(c, left(), say);
  await requireStreamManagement(c, left());
  await xmpp.send(xml("presence"));

  for (const [i, id] of ids.entries()) {
    await xmpp.send(
      xml("message", { to: opts.peer, type: "chat", id },
        xml("body", {}, `offline ${i + 1}/${count} ${nonce}`),
        xml("request", { xmlns: RECEIPTS })),
    );
  }
  await withTimeout(allAcked.promise, left(),
    `server acknowledged ${acked.size} of ${count} messages`).catch((err) => {
    throw new Failure(`${err.message} (got ${acked.size} of ${count})`);
  });
  say(`sent ${count} acknowledged`);

  await withTimeout(allReceipts.promise, left(), "not every receipt came back")
    .catch((err) => {
      throw new Failure(`${err.message}: ${receipts.size} of ${count}`);
    });
  if (strangers.length > 0) {
    throw new Failure(`receipts for ids never sent: ${strangers.join(", ")}`);
  }
  say(`received ${count} receipts`);

  await withTimeout(xmpp.stop(), Math.min(5000, left()), "stream did not close");
}

const opts = parseOptions({ count: { type: "string", default: "10" } });
run(NAME, (say) => scenario(opts, say));
