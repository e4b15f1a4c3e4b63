#!/usr/bin/python3
"""slixmpp scenario of twotick's PEP interoperability test.

Logs in two slixmpp clients of two accounts that share no subscription:
the owner (--jid) and a stranger (--peer, --peer-password). Then:

1. the stranger asks disco#info of the owner's bare JID and finds the
   pubsub/pep identity and the publish-options feature (XEP-0163 § 3);
2. the owner publishes an OMEMO device list to
   eu.siacs.conversations.axolotl.devicelist with slixmpp's xep_0060
   plugin and publish-options pubsub#access_model=open, as Conversations
   does (XEP-0060 § 7.1.5);
3. the stranger retrieves the node and finds the owner's device ids;
4. publishing again with access_model=presence is refused with conflict
   and <precondition-not-met/>, and a node with the default access model
   (presence) is refused to the stranger with not-authorized;
5. the peer fetches its roster and the two subscribe to each other's
   presence (the peer waits for the roster push that shows "both"); then
   the peer adds DEVICELIST+notify to its entity capabilities (slixmpp's
   xep_0115 and xep_0163) and sends them with its presence: the server
   asks for them, checks the hash, and sends the last device list
   (XEP-0163 § 4.3); a new device list the owner publishes then reaches
   the peer as an event too.

Exit status 0 means all of it happened within --timeout seconds.
Run it with Debian's /usr/bin/python3: python3-slixmpp installs there.
"""

import asyncio
import xml.etree.ElementTree as ET

from slixmpp.exceptions import IqError, IqTimeout

from slixcommon import Failure, base_arguments, login, logout, new_client, run

NAME = "slixmpp pep"

PLUGINS = ("xep_0004", "xep_0030", "xep_0060", "xep_0115", "xep_0163")

NS_OMEMO = "eu.siacs.conversations.axolotl"
DEVICELIST = NS_OMEMO + ".devicelist"
NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors"
NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
DEVICES = ("1234", "98765")


def device_list():
    """An OMEMO (0.3, Conversations) device list payload."""
    lst = ET.Element(f"{{{NS_OMEMO}}}list")
    for d in DEVICES:
        ET.SubElement(lst, f"{{{NS_OMEMO}}}device", id=d)
    return lst


def options(xmpp, access):
    """A publish-options form asking for the given access model."""
    form = xmpp["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden",
                   value="http://jabber.org/protocol/pubsub#publish-options")
    form.add_field(var="pubsub#access_model", value=access)
    return form


async def call(what, coro, timeout):
    """Awaits an IQ and turns its error or timeout into a Failure."""
    try:
        return await coro
    except IqError as e:
        raise Failure(f"{what} failed: {e.iq['error']['condition']}") from None
    except IqTimeout:
        raise Failure(f"{what} timed out after {timeout:.0f}s") from None


async def refused(what, coro, condition):
    """Awaits an IQ that must fail with condition; returns the error IQ."""
    try:
        await coro
    except IqError as e:
        got = e.iq["error"]["condition"]
        if got != condition:
            raise Failure(f"{what}: got {got}, want {condition}") from None
        return e.iq
    except IqTimeout:
        raise Failure(f"{what} timed out") from None
    raise Failure(f"{what} succeeded, want {condition}")


async def scenario(args, report):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def left():
        return max(0.1, deadline - loop.time())

    owner = new_client(args.jid + "/phone", args.password, PLUGINS)
    peer = new_client(args.peer + "/desk", args.peer_password, PLUGINS)
    for c in (owner, peer):
        await login(c, args.host, args.port, left(), report)
        c.send_presence()

    # 1. The owner's account is a PEP service.
    info = await call("disco#info of the owner's account",
                      peer["xep_0030"].get_info(jid=args.jid, timeout=left()), left())
    identities = {(i[0], i[1]) for i in info["disco_info"]["identities"]}
    if ("pubsub", "pep") not in identities:
        raise Failure(f"no pubsub/pep identity in {identities}")
    features = set(info["disco_info"]["features"])
    for f in ("publish", "publish-options", "retrieve-items", "access-open"):
        if f"http://jabber.org/protocol/pubsub#{f}" not in features:
            raise Failure(f"the account does not advertise pubsub#{f}")
    report.say("the account advertises pubsub/pep with publish-options")

    # 2. Publish the device list with access_model=open.
    res = await call("publishing the device list",
                     owner["xep_0060"].publish(args.jid, DEVICELIST, id="current",
                                               payload=device_list(),
                                               options=options(owner, "open"),
                                               timeout=left()), left())
    if res["type"] != "result":
        raise Failure(f"publish answered {res['type']}")
    report.say("published the device list with access_model=open")

    # 3. The stranger reads it.
    res = await call("retrieving the device list",
                     peer["xep_0060"].get_items(args.jid, DEVICELIST, timeout=left()), left())
    found = set()
    for item in res["pubsub"]["items"]:
        lst = item.xml.find(f"{{{NS_OMEMO}}}list")
        if lst is not None:
            found |= {d.get("id") for d in lst.findall(f"{{{NS_OMEMO}}}device")}
    if found != set(DEVICES):
        raise Failure(f"the stranger found devices {sorted(found)}, want {sorted(DEVICES)}")
    report.say(f"the stranger retrieved devices {sorted(found)}")

    # 4. Preconditions and the presence access model.
    err = await refused("publishing with access_model=presence",
                        owner["xep_0060"].publish(args.jid, DEVICELIST, id="current",
                                                  payload=device_list(),
                                                  options=options(owner, "presence"),
                                                  timeout=left()), "conflict")
    if err.xml.find(f"{{jabber:client}}error/{{{NS_PUBSUB_ERRORS}}}precondition-not-met") \
            is None:
        raise Failure("the conflict lacks <precondition-not-met/>")
    nick = ET.Element("{http://jabber.org/protocol/nick}nick")
    nick.text = "Owner"
    await call("publishing a nickname",
               owner["xep_0060"].publish(args.jid, "http://jabber.org/protocol/nick",
                                         payload=nick, timeout=left()), left())
    await refused("the stranger reading a presence node",
                  peer["xep_0060"].get_items(args.jid, "http://jabber.org/protocol/nick",
                                             timeout=left()), "not-authorized")
    report.say("conflicting publish-options and the presence access model were enforced")

    # 5. Presence subscriptions, +notify in the caps, and events.
    events = []
    arrived = asyncio.Event()

    def on_event(msg):
        # slixmpp's pubsub_publish handler is called from inside its own
        # loop over these items, and a stanza object has one iterator: a
        # second loop over it here would restart that one for ever. Read
        # the XML instead.
        items = msg["pubsub_event"]["items"]
        if items["node"] == DEVICELIST and msg["from"].bare == args.jid:
            for item in items.xml.findall(f"{{{NS_PUBSUB_EVENT}}}item"):
                lst = item.find(f"{{{NS_OMEMO}}}list")
                if lst is not None:
                    events.append({d.get("id") for d in lst.findall(f"{{{NS_OMEMO}}}device")})
                    arrived.set()

    peer.add_event_handler("pubsub_publish", on_event)

    async def event_with(device, what):
        while not any(device in e for e in events):
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), left())
            except asyncio.TimeoutError:
                raise Failure(f"the peer got no {what}") from None

    online = loop.create_future()

    def on_available(pres):
        if pres["from"].bare == args.jid and not online.done():
            online.set_result(None)

    # The owner's slixmpp accepts and subscribes back, and the peer's
    # accepts in turn and sends the owner its last presence. slixmpp does
    # that by setting 'to' on its stored broadcast presence, which may be
    # one still waiting to be written: so the new caps below go out only
    # once the server has pushed the pair as "both".
    mutual = asyncio.Event()

    def on_roster(_):
        if peer.client_roster[args.jid]["subscription"] == "both":
            mutual.set()

    peer.add_event_handler("presence_available", on_available)
    peer.add_event_handler("roster_update", on_roster)
    # Fetching the roster makes the peer a resource that gets roster
    # pushes (RFC 6121 § 2.1.6).
    await call("fetching the peer's roster", peer.get_roster(timeout=left()), left())
    peer.send_presence_subscription(pto=args.jid)
    try:
        await asyncio.wait_for(online, left())
        await asyncio.wait_for(mutual.wait(), left())
    except asyncio.TimeoutError:
        raise Failure("the peer never saw the owner's presence and a mutual "
                      "subscription") from None
    report.say("the peer receives the owner's presence, and both subscribe to each other")

    peer["xep_0163"].add_interest(DEVICELIST)
    # update_caps(broadcast=True) can wait for ever in slixmpp 1.8.3; the
    # new caps go out with the next presence anyway.
    await asyncio.wait_for(peer["xep_0115"].update_caps(broadcast=False), left())
    peer.send_presence()
    await event_with(DEVICES[0], "last device list after announcing +notify")
    report.say("the peer got the last device list after announcing +notify")

    newer = ET.Element(f"{{{NS_OMEMO}}}list")
    for d in DEVICES + ("5555",):
        ET.SubElement(newer, f"{{{NS_OMEMO}}}device", id=d)
    await call("publishing a new device list",
               owner["xep_0060"].publish(args.jid, DEVICELIST, id="current", payload=newer,
                                         options=options(owner, "open"), timeout=left()),
               left())
    await event_with("5555", "event for the new device list")
    report.say("the peer got the new device list as an event")

    for c in (owner, peer):
        await logout(c, min(5.0, left()))


def main():
    p = base_arguments(__doc__.splitlines()[0])
    p.add_argument("--peer-password", required=True)
    args = p.parse_args()
    run(lambda report: scenario(args, report), NAME)


if __name__ == "__main__":
    main()
