#!/usr/bin/python3
"""slixmpp side of twotick's address-book interoperability test.

Logs in with SCRAM over STARTTLS, fetches the roster, and uploads an
address book holding --peer's number with the Quicksy phone-book IQ to
api.<domain> (a raw IQ: slixmpp has no plugin for it). The peer is not
registered yet, so the answer must list no match. The script prints
"uploaded" and then waits for the roster push that adds the peer, which
the server sends when the peer's account is created (the test does that
with "twotick user add" once it reads "uploaded"). Exit status 0 means the
push came, with subscription none, within --timeout seconds.

Run it with Debian's /usr/bin/python3: python3-slixmpp installs there.
"""

import asyncio
from xml.etree import ElementTree as ET

import slixmpp

from slixcommon import Failure, base_arguments, fetch_roster, login, logout
from slixcommon import new_client, roster_push_of, run

NAME = "slixmpp"
NS = "im.quicksy.synchronization:0"


async def contacts(args, report):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def left():
        return max(0.1, deadline - loop.time())

    xmpp = new_client(args.jid, args.password)
    pushed = roster_push_of(xmpp, args.peer)

    await login(xmpp, args.host, args.port, left(), report)
    await fetch_roster(xmpp, left(), report)

    number = args.peer.split("@", 1)[0]
    domain = xmpp.boundjid.domain
    iq = xmpp.make_iq_get(ito=f"api.{domain}")
    book = ET.Element(f"{{{NS}}}phone-book")
    ET.SubElement(book, f"{{{NS}}}entry", number=number)
    iq.append(book)
    try:
        answer = await iq.send(timeout=left())
    except slixmpp.exceptions.IqError as e:
        raise Failure(f"phone-book upload failed: {e.iq['error']['condition']}") from None
    except slixmpp.exceptions.IqTimeout:
        raise Failure("phone-book upload timed out") from None
    result = answer.xml.find(f"{{{NS}}}phone-book")
    if result is None or result.get("ver") is None:
        raise Failure(f"answer without a phone-book and its ver: {answer}")
    if result.findall(f"{{{NS}}}entry"):
        raise Failure(f"{number} matched before it was registered: {answer}")
    report.say("uploaded")

    try:
        item = await asyncio.wait_for(pushed, left())
    except asyncio.TimeoutError:
        raise Failure(f"no roster push of {args.peer} within {args.timeout:.0f}s") from None
    if item["subscription"] != "none":
        raise Failure(f"pushed with subscription {item['subscription']}, want none")
    report.say(f"roster push: {args.peer} subscription={item['subscription']}")

    await logout(xmpp, min(5.0, left()))


def main():
    args = base_arguments(__doc__.splitlines()[0]).parse_args()
    run(lambda report: contacts(args, report), NAME)


if __name__ == "__main__":
    main()
