#!/usr/bin/python3
"""slixmpp side of twotick's "Sync contacts" ad-hoc command test.

Runs the server's address-book command the way a client with XEP-0050
support does (Gajim's "Execute command"), with slixmpp's own xep_0050 and
xep_0004 plugins: lists the server's commands, executes "Sync contacts",
fills its form with --peer's number written nationally with a name and a
line that is no number, and completes it. The answer must list the peer
among the contacts found and say that one line was skipped; then the
roster push must add the peer, named as in the form, with subscription
none (the peer has not uploaded a book holding this user's number).
Exit status 0 means all of that happened within --timeout seconds.

Run it with Debian's /usr/bin/python3: python3-slixmpp installs there.
"""

import asyncio

import slixmpp

from slixcommon import Failure, base_arguments, fetch_roster, login, logout
from slixcommon import new_client, roster_push_of, run

NAME = "slixmpp"
NODE = "sync-contacts"
FIELD = "numbers"
PEER_NAME = "Bobby Tables"


def national(number):
    """Writes a +1 number as people in its country do: (202) 555-0102."""
    if not number.startswith("+1") or len(number) != 12:
        raise Failure(f"--peer must be a +1 number of ten digits, not {number}")
    d = number[2:]
    return f"({d[:3]}) {d[3:6]}-{d[6:]}"


async def command(args, report):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def left():
        return max(0.1, deadline - loop.time())

    xmpp = new_client(args.jid, args.password, ("xep_0030", "xep_0004", "xep_0050"))
    pushed = roster_push_of(xmpp, args.peer)

    await login(xmpp, args.host, args.port, left(), report)
    await fetch_roster(xmpp, left(), report)
    server = xmpp.boundjid.domain

    try:
        listing = await xmpp["xep_0050"].get_commands(jid=server, timeout=left())
        nodes = {node: name for _jid, node, name in listing["disco_items"]["items"]}
        if NODE not in nodes:
            raise Failure(f"the server lists no {NODE} command: {nodes}")
        report.say(f"command {NODE!r} named {nodes[NODE]!r}")

        first = await xmpp["xep_0050"].send_command(server, NODE, action="execute",
                                                    timeout=left())
        cmd = first["command"]
        if cmd["status"] != "executing" or not cmd["sessionid"]:
            raise Failure(f"execute answered status {cmd['status']!r}: {first}")
        fields = cmd["form"].get_fields()
        if FIELD not in fields or fields[FIELD]["type"] != "text-multi":
            raise Failure(f"the form has no text-multi field {FIELD!r}: {first}")

        form = xmpp["xep_0004"].make_form(ftype="submit")
        form.add_field(var=FIELD, ftype="text-multi",
                       value=f"{national(args.peer.split('@')[0])}, {PEER_NAME}\nnot a number")
        done = await xmpp["xep_0050"].send_command(server, NODE, action="complete",
                                                   payload=form,
                                                   sessionid=cmd["sessionid"],
                                                   timeout=left())
    except slixmpp.exceptions.IqError as e:
        raise Failure(f"command failed: {e.iq['error']['condition']}") from None
    except slixmpp.exceptions.IqTimeout:
        raise Failure("command timed out") from None

    result = done["command"]
    if result["status"] != "completed":
        raise Failure(f"complete answered status {result['status']!r}: {done}")
    notes = " ".join(text for _type, text in result["notes"])
    if "Skipped 1 " not in notes:
        raise Failure(f"the note does not count the skipped line: {notes!r}")
    found = [str(j) for j in result["form"].get_fields()["matches"]["value"]]
    if found != [args.peer]:
        raise Failure(f"contacts found {found}, want [{args.peer}]")
    report.say(f"completed: {notes}")

    try:
        item = await asyncio.wait_for(pushed, left())
    except asyncio.TimeoutError:
        raise Failure(f"no roster push of {args.peer} within {args.timeout:.0f}s") from None
    if item["subscription"] != "none" or item["name"] != PEER_NAME:
        raise Failure(f"pushed {item['name']!r} with subscription {item['subscription']}, "
                      f"want {PEER_NAME!r} with none")
    report.say(f"roster push: {args.peer} name={item['name']!r} "
               f"subscription={item['subscription']}")

    await logout(xmpp, min(5.0, left()))


def main():
    args = base_arguments(__doc__.splitlines()[0]).parse_args()
    run(lambda report: command(args, report), NAME)


if __name__ == "__main__":
    main()
