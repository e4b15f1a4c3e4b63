#!/usr/bin/python3
"""slixmpp client side of twotick's push (XEP-0357) interoperability test.

Logs in as --jid, checks that the account's bare JID advertises
urn:xmpp:push:0, enables push at --push-jid with --node and a
publish-options form carrying --secret (XEP-0357 § 6), and logs out. Then
logs in as --peer and sends one chat message to --jid, which has no session
now, so that the server notifies the app server; the test's component,
acting as that app server, checks the publish. slixmpp 1.8 has no XEP-0357
plugin, so the enable IQ is built from its stanza classes by hand.

Exit status 0 means push was enabled and the message sent within --timeout
seconds. Run it with Debian's /usr/bin/python3.
"""

import asyncio
import secrets
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout

from slixcommon import Failure, base_arguments, login, logout, new_client, run

NAME = "slixmpp push"

NS_PUSH = "urn:xmpp:push:0"
NS_DATA = "jabber:x:data"
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"


def enable_element(push_jid, node, secret):
    """Returns the <enable/> of XEP-0357 § 6, example 9."""
    enable = ET.Element(f"{{{NS_PUSH}}}enable", {"jid": push_jid, "node": node})
    form = ET.SubElement(enable, f"{{{NS_DATA}}}x", {"type": "submit"})
    for var, value in (("FORM_TYPE", PUBLISH_OPTIONS), ("secret", secret)):
        field = ET.SubElement(form, f"{{{NS_DATA}}}field", {"var": var})
        ET.SubElement(field, f"{{{NS_DATA}}}value").text = value
    return enable


async def scenario(args, report):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def left():
        return max(0.1, deadline - loop.time())

    user = new_client(args.jid + "/phone", args.password, ("xep_0030",))
    await login(user, args.host, args.port, left(), report)
    try:
        info = await user["xep_0030"].get_info(jid=args.jid, timeout=left())
    except (IqError, IqTimeout) as e:
        raise Failure(f"disco#info of the bare JID failed: {e}") from None
    if NS_PUSH not in info["disco_info"]["features"]:
        raise Failure(f"the account's bare JID does not advertise {NS_PUSH}")

    iq = user.make_iq_set()
    iq.append(enable_element(args.push_jid, args.node, args.secret))
    try:
        await iq.send(timeout=left())
    except IqError as e:
        raise Failure(f"enabling push failed: {e.iq['error']['condition']}") from None
    except IqTimeout:
        raise Failure("enabling push timed out") from None
    report.say(f"push enabled at {args.push_jid} node {args.node}")
    await logout(user, min(5.0, left()))

    peer = new_client(args.peer, args.peer_password)
    await login(peer, args.host, args.port, left(), report)
    body = f"wake up {secrets.token_hex(4)}"
    peer.send_message(mto=args.jid, mbody=body, mtype="chat")
    report.say(f"sent {body!r} to {args.jid}, who is offline")
    await logout(peer, min(5.0, left()))


def main():
    p = base_arguments(__doc__.splitlines()[0])
    p.add_argument("--peer-password", required=True)
    p.add_argument("--push-jid", required=True, help="the app server's JID")
    p.add_argument("--node", required=True)
    p.add_argument("--secret", required=True, help="sent in publish-options")
    args = p.parse_args()
    run(lambda report: scenario(args, report), NAME)


if __name__ == "__main__":
    main()
