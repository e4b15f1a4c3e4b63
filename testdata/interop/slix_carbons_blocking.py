#!/usr/bin/python3
"""slixmpp scenario of twotick's carbons and blocking interoperability test.

Logs in three slixmpp clients at once: two resources of one account
(--jid, "phone" and "laptop") and the peer (--peer, --peer-password). Both
resources enable message carbons (XEP-0280) with slixmpp's xep_0280 plugin
and fetch their blocklist (XEP-0191) with xep_0191. Then:

1. each resource sends a chat message to the peer and the other resource
   gets it as a <sent/> carbon; the peer receives both;
2. the peer writes to the phone's full JID and the laptop gets a
   <received/> carbon;
3. the phone blocks the peer and both resources get the blocklist push;
   the peer's next message (to the bare JID) is refused with
   service-unavailable, and a
   message from the phone to the peer is refused with not-acceptable and
   <blocked xmlns='urn:xmpp:blocking:errors'/> (XEP-0191 § 3.3, § 3.4);
4. the phone unblocks the peer, both get the push, and the peer's next
   message arrives; the refused one never does, on either resource.

Exit status 0 means all of it happened within --timeout seconds.
Run it with Debian's /usr/bin/python3: python3-slixmpp installs there.
"""

import asyncio
import secrets

from slixmpp.exceptions import IqError, IqTimeout

from slixcommon import Failure, base_arguments, login, logout, new_client, run

NAME = "slixmpp carbons+blocking"

PLUGINS = ("xep_0030", "xep_0297", "xep_0280", "xep_0191")

NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"


class Recorder:
    """Keeps every message and blocklist push a client received, in order,
    and lets the scenario wait for one that matches."""

    def __init__(self, xmpp, name):
        self.xmpp = xmpp
        self.name = name
        self.seen = []  # (kind, stanza)
        self.changed = asyncio.Event()
        # slixmpp raises "message" only for a message with a body, and
        # "message_error" for an error, which need not echo the body.
        xmpp.add_event_handler("message", lambda m: self.add("message", m))
        xmpp.add_event_handler("message_error", lambda m: self.add("error", m))
        xmpp.add_event_handler("carbon_sent", lambda m: self.add("sent", m))
        xmpp.add_event_handler("carbon_received", lambda m: self.add("received", m))
        xmpp.add_event_handler("blocked", lambda iq: self.add("blocked", iq))
        xmpp.add_event_handler("unblocked", lambda iq: self.add("unblocked", iq))

    def add(self, kind, st):
        self.seen.append((kind, st))
        self.changed.set()

    async def expect(self, kind, match, what, timeout):
        """Returns the first recorded stanza of kind that match accepts,
        waiting for it at most timeout seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        checked = 0
        while True:
            for k, st in self.seen[checked:]:
                if k == kind and match(st):
                    return st
            checked = len(self.seen)
            self.changed.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise Failure(f"{self.name}: no {what} within {timeout:.0f}s")
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def bodies(self):
        """Every body this client saw, in plain messages and in carbons."""
        out = []
        for kind, st in self.seen:
            if kind == "message":
                out.append(st["body"])
            elif kind == "sent":
                out.append(st["carbon_sent"]["body"])
            elif kind == "received":
                out.append(st["carbon_received"]["body"])
        return out


def forwarded_body(kind, body):
    """Matches a carbon of the given kind whose forwarded message has body."""
    def match(msg):
        return msg[f"carbon_{kind}"]["body"] == body
    return match


def pushed(jid):
    """Matches a blocklist push (block or unblock) that names jid."""
    def match(iq):
        items = iq.xml.findall("{urn:xmpp:blocking}*/{urn:xmpp:blocking}item")
        return any(it.get("jid", "").split("/")[0] == jid for it in items)
    return match


async def call(what, coro, timeout):
    """Awaits an IQ and turns its error or timeout into a Failure."""
    try:
        return await coro
    except IqError as e:
        raise Failure(f"{what} failed: {e.iq['error']['condition']}") from None
    except IqTimeout:
        raise Failure(f"{what} timed out after {timeout:.0f}s") from None


async def scenario(args, report):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def left():
        return max(0.1, deadline - loop.time())

    def tag():
        return secrets.token_hex(4)

    phone = new_client(args.jid + "/phone", args.password, PLUGINS)
    laptop = new_client(args.jid + "/laptop", args.password, PLUGINS)
    peer = new_client(args.peer + "/desk", args.peer_password, PLUGINS)
    rec = {c: Recorder(c, n) for c, n in ((phone, "phone"), (laptop, "laptop"), (peer, "peer"))}

    for c in (phone, laptop, peer):
        await login(c, args.host, args.port, left(), report)
        c.send_presence()

    info = await call("disco#info of the server",
                      phone["xep_0030"].get_info(jid=phone.boundjid.domain, timeout=left()),
                      left())
    features = set(info["disco_info"]["features"])
    for need in ("urn:xmpp:carbons:2", "urn:xmpp:blocking"):
        if need not in features:
            raise Failure(f"the server does not advertise {need}")
    report.say("server advertises carbons and blocking")

    for name, c in (("phone", phone), ("laptop", laptop)):
        await call(f"enabling carbons on the {name}",
                   c["xep_0280"].enable(timeout=left()), left())
        blocked = await call(f"blocklist of the {name}",
                             c["xep_0191"].get_blocked(timeout=left()), left())
        if blocked["blocklist"]["items"]:
            raise Failure(f"fresh account has blocklist {blocked['blocklist']['items']}")
    report.say("carbons enabled and blocklist fetched on both resources")

    # 1. Sent carbons, both ways between the two resources.
    for sender, other, sname, oname in ((phone, laptop, "phone", "laptop"),
                                        (laptop, phone, "laptop", "phone")):
        body = f"from the {sname} {tag()}"
        sender.send_message(mto=args.peer, mbody=body, mtype="chat")
        await rec[other].expect("sent", forwarded_body("sent", body),
                                f"sent carbon of {body!r}", left())
        await rec[peer].expect("message", lambda m, b=body: m["body"] == b,
                               f"message {body!r}", left())
        report.say(f"the {oname} got the {sname}'s message to the peer as a sent carbon")

    # 2. A received carbon of a message to the phone's full JID.
    body = f"to the phone {tag()}"
    peer.send_message(mto=phone.boundjid.full, mbody=body, mtype="chat")
    await rec[phone].expect("message", lambda m: m["body"] == body, f"message {body!r}", left())
    await rec[laptop].expect("received", forwarded_body("received", body),
                             f"received carbon of {body!r}", left())
    report.say("the laptop got the peer's message to the phone as a received carbon")

    # 3. Block: pushes to both resources, refusals both ways.
    await call("blocking the peer", phone["xep_0191"].block(args.peer, timeout=left()), left())
    for c in (phone, laptop):
        await rec[c].expect("blocked", pushed(args.peer), "block push", left())
    report.say("both resources got the block push")

    # To the bare JID: a server may drop, rather than refuse, a message to
    # the full JID of an online resource (Prosody does, its issue #690).
    refused = f"while blocked {tag()}"
    peer.send_message(mto=args.jid, mbody=refused, mtype="chat")
    err = await rec[peer].expect(
        "error", lambda m: m["from"].bare == args.jid,
        "error for the message to the blocking user", left())
    if err["error"]["condition"] != "service-unavailable":
        raise Failure(f"blocked sender got {err['error']['condition']}, want service-unavailable")
    report.say("the blocked peer's message was refused with service-unavailable")

    body = f"to the blocked peer {tag()}"
    phone.send_message(mto=args.peer, mbody=body, mtype="chat")
    err = await rec[phone].expect(
        "error", lambda m: m["from"].bare == args.peer,
        "error for the message to the blocked peer", left())
    if err["error"]["condition"] != "not-acceptable":
        raise Failure(f"message to a blocked JID got {err['error']['condition']}, "
                      "want not-acceptable")
    if err.xml.find(f"{{jabber:client}}error/{{{NS_BLOCKING_ERRORS}}}blocked") is None:
        raise Failure("the not-acceptable error lacks <blocked xmlns='urn:xmpp:blocking:errors'/>")
    report.say("the message to the blocked peer was refused with not-acceptable and <blocked/>")

    # 4. Unblock: pushes, and messages flow again.
    await call("unblocking the peer", phone["xep_0191"].unblock(args.peer, timeout=left()), left())
    for c in (phone, laptop):
        await rec[c].expect("unblocked", pushed(args.peer), "unblock push", left())
    body = f"after unblocking {tag()}"
    peer.send_message(mto=phone.boundjid.full, mbody=body, mtype="chat")
    await rec[phone].expect("message", lambda m: m["body"] == body, f"message {body!r}", left())
    await rec[laptop].expect("received", forwarded_body("received", body),
                             f"received carbon of {body!r}", left())
    # Messages from one sender keep their order, so had the refused message
    # been delivered late, it would be here by now.
    for c, n in ((phone, "phone"), (laptop, "laptop")):
        if refused in rec[c].bodies():
            raise Failure(f"the {n} received the message sent while the peer was blocked")
    report.say("after unblocking the peer's message arrived, and the refused one never did")

    for c in (phone, laptop, peer):
        await logout(c, min(5.0, left()))


def main():
    p = base_arguments(__doc__.splitlines()[0])
    p.add_argument("--peer-password", required=True)
    args = p.parse_args()
    run(lambda report: scenario(args, report), NAME)


if __name__ == "__main__":
    main()
