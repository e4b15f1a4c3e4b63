#!/usr/bin/python3
"""slixmpp receiver of twotick's offline delivery interoperability test.

Started after the sender has sent --count messages to this account while it
was offline. It then:

1. logs in with SCRAM over STARTTLS and XEP-0198 stream management, sends
   initial presence, and waits for exactly --count messages from --peer, in
   the order they were sent, each with a XEP-0203 delay stamp; it answers
   each XEP-0184 receipt request;
2. waits until the server has acknowledged every receipt (XEP-0198 <a/>),
   acknowledges everything it received with its own <a/>, and logs out;
3. logs in again and checks that nothing more arrives from --peer: a ping
   round trip after initial presence is the barrier behind which stored
   messages would already have come, and --quiet seconds more are allowed
   for a server that sends them later.

Exit status 0 means all three happened within --timeout seconds.
"""

import asyncio
import re

from slixcommon import Failure, base_arguments, login, logout, new_client, run

NAME = "slixmpp-offline"
PLUGINS = ("xep_0030", "xep_0184", "xep_0198", "xep_0199", "xep_0203")
BODY = re.compile(r"^offline (\d+)/(\d+) ")


class Inbox:
    """Collects the scenario's messages from the peer as they arrive."""

    def __init__(self, xmpp, peer, count, report):
        self.xmpp, self.peer, self.count, self.report = xmpp, peer, count, report
        self.messages = []
        loop = asyncio.get_running_loop()
        self.any = loop.create_future()
        self.full = loop.create_future()
        xmpp.add_event_handler("message", self.on_message)

    def on_message(self, msg):
        if msg["from"].bare != self.peer or not BODY.match(msg["body"]):
            return
        self.messages.append(msg)
        if msg["request_receipt"]:
            self.xmpp["xep_0184"].ack(msg)
        if not self.any.done():
            self.any.set_result(None)
        if len(self.messages) == self.count and not self.full.done():
            self.full.set_result(None)


async def barrier(xmpp, timeout):
    """Pings the server: whatever it sent before the answer has arrived."""
    try:
        await xmpp["xep_0199"].send_ping(xmpp.boundjid.domain, timeout=timeout)
    except Exception as e:  # IqError or IqTimeout, both mean no barrier.
        raise Failure(f"ping to the server failed: {e!r}") from None


def check_order(messages, count):
    """Checks that messages 1..count arrived once each, in order, stamped."""
    for want, msg in enumerate(messages, start=1):
        got, total = (int(x) for x in BODY.match(msg["body"]).groups())
        if got != want or total != count:
            order = [int(BODY.match(m["body"]).group(1)) for m in messages]
            raise Failure(f"messages out of order or duplicated: {order}")
        if not msg["delay"]["stamp"]:
            raise Failure(f"message {got} has no XEP-0203 delay stamp")


async def acknowledged(xmpp, timeout):
    """Waits until the server has acknowledged every stanza sent so far."""
    sm = xmpp["xep_0198"]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while sm.unacked_queue:
        drained = loop.create_future()

        def on_acked(_stanza, drained=drained):
            if not sm.unacked_queue and not drained.done():
                drained.set_result(None)

        xmpp.add_event_handler("stanza_acked", on_acked)
        sm.request_ack()
        try:
            await asyncio.wait_for(drained, max(0.1, min(1.0, end - loop.time())))
        except asyncio.TimeoutError:
            if loop.time() >= end:
                raise Failure(f"server left {len(sm.unacked_queue)} stanzas "
                              "unacknowledged") from None
        finally:
            xmpp.del_event_handler("stanza_acked", on_acked)


async def session(args, report, left):
    """Logs in with stream management and returns (client, inbox)."""
    xmpp = new_client(args.jid, args.password, PLUGINS)
    xmpp["xep_0184"].auto_ack = False  # Inbox answers, so that it is counted.
    inbox = Inbox(xmpp, args.peer, args.count, report)
    await login(xmpp, args.host, args.port, left(), report)
    if "stream_management" not in xmpp.features:
        raise Failure("server did not enable XEP-0198 stream management")
    xmpp.send_presence()
    return xmpp, inbox


async def scenario(args, report):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def left():
        return max(0.1, deadline - loop.time())

    xmpp, inbox = await session(args, report, left)
    try:
        await asyncio.wait_for(inbox.full, left())
    except asyncio.TimeoutError:
        raise Failure(f"received {len(inbox.messages)} of {args.count} "
                      "stored messages") from None
    await barrier(xmpp, left())
    if len(inbox.messages) != args.count:
        raise Failure(f"received {len(inbox.messages)} messages, want {args.count}")
    check_order(inbox.messages, args.count)
    report.say(f"first login: received {args.count} stored messages in order")

    await acknowledged(xmpp, left())
    xmpp["xep_0198"].send_ack()
    report.say(f"acknowledged h={xmpp['xep_0198'].handled}; logging out")
    await logout(xmpp, min(5.0, left()))

    xmpp, inbox = await session(args, report, left)
    await barrier(xmpp, left())
    try:
        await asyncio.wait_for(inbox.any, min(args.quiet, left()))
    except asyncio.TimeoutError:
        pass
    if inbox.messages:
        raise Failure(f"second login: {len(inbox.messages)} messages came again")
    report.say("second login: nothing more arrived")
    await logout(xmpp, min(5.0, left()))


def main():
    p = base_arguments(__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=10, help="messages expected")
    p.add_argument("--quiet", type=float, default=2.0,
                   help="seconds to watch for redelivery after the barrier")
    args = p.parse_args()
    run(lambda report: scenario(args, report), NAME)


if __name__ == "__main__":
    main()
