// @xmpp/client side of twotick's chat interoperability test.
//
// Logs in with SCRAM over STARTTLS, fetches the roster, sends initial
// presence and prints "online". It then waits for a line "go" on standard
// input (the test writes it once both clients are online, so that neither
// message can reach an account that is not logged in yet), sends one chat
// message to the peer, and waits for the peer's message. Exit status 0
// means both happened within --timeout seconds.

import { randomBytes } from "node:crypto";

import {
  Failure,
  bare,
  deadline,
  fetchRoster,
  login,
  newClient,
  parseOptions,
  run,
  stdinLines,
  withTimeout,
  xml,
} from "./xmppjs_common.mjs";

const NAME = "xmpp.js";

async function chat(opts, say) {
  const left = deadline(opts.timeout);
  const c = newClient(opts);
  const { xmpp } = c;
  const stdin = stdinLines();

  let fail;
  const received = new Promise((resolve, reject) => {
    fail = reject;
    xmpp.on("stanza", (stanza) => {
      if (!stanza.is("message") || bare(stanza.attrs.from) !== opts.peer) {
        return;
      }
      if (stanza.attrs.type === "error") {
        reject(new Failure(`message error: ${stanza.getChild("error")}`));
        return;
      }
      const body = stanza.getChildText("body") ?? "";
      if (body.startsWith("hello from ")) resolve(stanza);
    });
  });
  xmpp.on("error", (err) => fail(new Failure(`client error: ${err.message}`)));
  received.catch(() => {}); // Awaited below; silence the early rejection.

  await login(c, left(), say);
  await fetchRoster(xmpp, left(), say);
  await xmpp.send(xml("presence"));
  say("online");

  const line = await withTimeout(stdin(), left(), "no 'go' on standard input");
  stdin.close();
  if (line !== "go") {
    throw new Failure(`expected 'go' on standard input, got ${JSON.stringify(line)}`);
  }

  const body = `hello from ${NAME} ${randomBytes(4).toString("hex")}`;
  await xmpp.send(
    xml("message", { to: opts.peer, type: "chat", id: randomBytes(6).toString("hex") },
      xml("body", {}, body)),
  );
  say(`sent ${JSON.stringify(body)} to ${opts.peer}`);

  const msg = await withTimeout(received, left(), `no message from ${opts.peer}`);
  say(`received ${JSON.stringify(msg.getChildText("body"))} from ${msg.attrs.from}`);

  await withTimeout(xmpp.stop(), Math.min(5000, left()), "stream did not close");
}

const opts = parseOptions();
run(NAME, (say) => chat(opts, say));
