#!/usr/bin/python3
"""slixmpp side of twotick's chat interoperability test.

Logs in with SCRAM over STARTTLS, fetches the roster, sends initial presence
and prints "online". It then waits for a line "go" on standard input (the
test writes it once both clients are online, so that neither message can
reach an account that is not logged in yet), sends one chat message to the
peer, and waits for the peer's message. Exit status 0 means both happened
within --timeout seconds.

Run it with Debian's /usr/bin/python3: python3-slixmpp installs there.
"""

import asyncio
import secrets

from slixcommon import Failure, base_arguments, fetch_roster, login, logout
from slixcommon import new_client, read_line, run, stdin_reader

NAME = "slixmpp"


async def chat(args, report):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def left():
        return max(0.1, deadline - loop.time())

    xmpp = new_client(args.jid, args.password)
    received = loop.create_future()

    def on_message(msg):
        if msg["from"].bare != args.peer or received.done():
            return
        if msg["type"] == "error":
            received.set_exception(Failure(f"message error: {msg['error']['condition']}"))
        elif msg["body"].startswith("hello from "):
            received.set_result(msg)

    xmpp.add_event_handler("message", on_message)
    stdin = await stdin_reader()

    await login(xmpp, args.host, args.port, left(), report)
    await fetch_roster(xmpp, left(), report)
    xmpp.send_presence()
    report.say("online")

    line = await read_line(stdin, left(), "go")
    if line != "go":
        raise Failure(f"expected 'go' on standard input, got {line!r}")

    body = f"hello from {NAME} {secrets.token_hex(4)}"
    xmpp.send_message(mto=args.peer, mbody=body, mtype="chat")
    report.say(f"sent {body!r} to {args.peer}")

    try:
        msg = await asyncio.wait_for(received, left())
    except asyncio.TimeoutError:
        raise Failure(f"no message from {args.peer} within {args.timeout:.0f}s") from None
    report.say(f"received {msg['body']!r} from {msg['from']}")

    await logout(xmpp, min(5.0, left()))


def main():
    args = base_arguments(__doc__.splitlines()[0]).parse_args()
    run(lambda report: chat(args, report), NAME)


if __name__ == "__main__":
    main()
