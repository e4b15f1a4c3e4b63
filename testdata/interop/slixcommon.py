"""Shared pieces of twotick's slixmpp interoperability scripts.

The scripts run with Debian's /usr/bin/python3 and the python3-slixmpp
package (1.8). Each one exits 0 only when its scenario happened; otherwise
it prints "FAIL: <reason>" on standard error and exits 1. Progress lines go
to standard output, prefixed with the script's name, so that a test that
runs several clients at once can tell them apart in its log.
"""

import argparse
import asyncio
import ssl
import sys

import slixmpp

# Mechanisms that keep the password off the wire. The scripts refuse to log
# in with anything else: an interoperability test that silently fell back
# to PLAIN would hide a broken SCRAM implementation.
SCRAM_MECHANISMS = {
    "SCRAM-SHA-1",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-512",
    "SCRAM-SHA-512-PLUS",
}


class Failure(Exception):
    """The scenario did not happen; the message says what went wrong."""


class Reporter:
    """Prints progress lines with a fixed prefix, flushed at once."""

    def __init__(self, name):
        self.name = name

    def say(self, *parts):
        print(f"{self.name}:", *parts, flush=True)


def base_arguments(description):
    """Returns a parser with the options every script takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--jid", required=True, help="account to log in as")
    p.add_argument("--password", required=True)
    p.add_argument("--host", default="127.0.0.1", help="server address")
    p.add_argument("--port", type=int, default=5222, help="STARTTLS c2s port")
    p.add_argument("--peer", required=True, help="bare JID of the other client")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds the whole scenario may take")
    return p


def new_client(jid, password, plugins=()):
    """Returns a client that will only log in with SCRAM over STARTTLS.

    The server's certificate is self-signed, so verification is off; the
    tests check the protocol, not the PKI.
    """
    xmpp = slixmpp.ClientXMPP(jid, password)
    xmpp.ssl_context.check_hostname = False
    xmpp.ssl_context.verify_mode = ssl.CERT_NONE
    xmpp["feature_mechanisms"].use_mechs = set(SCRAM_MECHANISMS)
    for name in plugins:
        xmpp.register_plugin(name)
    return xmpp


async def login(xmpp, host, port, timeout, report):
    """Connects with STARTTLS and waits for stream negotiation to finish.

    slixmpp starts the session at resource binding and enables stream
    management after it, so this waits for the end of negotiation: whoever
    needs XEP-0198 can then look at xmpp.features. Raises Failure if the
    connection, TLS, authentication or the session fails, or if it takes
    longer than timeout seconds.
    """
    loop = asyncio.get_running_loop()
    started = loop.create_future()

    def fail(reason):
        if not started.done():
            started.set_exception(Failure(reason))

    def ok(_event):
        if not started.done():
            started.set_result(None)

    handlers = {
        "stream_negotiated": ok,
        "failed_all_auth": lambda _e: fail("authentication failed"),
        "connection_failed": lambda e: fail(f"connection failed: {e}"),
        "stream_error": lambda e: fail(f"stream error: {e}"),
        "disconnected": lambda r: fail(f"disconnected before the session started: {r}"),
    }
    for event, handler in handlers.items():
        xmpp.add_event_handler(event, handler)

    xmpp.connect((host, port), use_ssl=False, force_starttls=True)
    try:
        await asyncio.wait_for(started, timeout)
    except asyncio.TimeoutError:
        raise Failure(f"no session after {timeout:.0f}s") from None
    finally:
        for event, handler in handlers.items():
            xmpp.del_event_handler(event, handler)

    if not isinstance(xmpp.socket, (ssl.SSLObject, ssl.SSLSocket)):
        raise Failure("session started without TLS")
    mech = xmpp["feature_mechanisms"].mech
    if mech is None or mech.name not in SCRAM_MECHANISMS:
        raise Failure(f"authenticated with {mech and mech.name}, not SCRAM")
    report.say(f"logged in as {xmpp.boundjid.full} with {mech.name}"
               f" over {xmpp.socket.version()}")


async def logout(xmpp, timeout):
    """Closes the stream and waits, within timeout seconds, for the end."""
    loop = asyncio.get_running_loop()
    gone = loop.create_future()

    def done(_reason):
        if not gone.done():
            gone.set_result(None)

    xmpp.add_event_handler("disconnected", done)
    xmpp.disconnect(wait=timeout)
    try:
        await asyncio.wait_for(gone, timeout + 1)
    except asyncio.TimeoutError:
        raise Failure("stream did not close") from None


async def fetch_roster(xmpp, timeout, report):
    """Fetches the roster (RFC 6121 § 2.1.3) and checks the answer."""
    try:
        iq = await xmpp.get_roster(timeout=timeout)
    except slixmpp.exceptions.IqError as e:
        raise Failure(f"roster get failed: {e.iq['error']['condition']}") from None
    except slixmpp.exceptions.IqTimeout:
        raise Failure("roster get timed out") from None
    if iq["type"] != "result":
        raise Failure(f"roster get answered with type {iq['type']}")
    report.say(f"roster has {len(iq['roster']['items'])} items")


def roster_push_of(xmpp, jid):
    """Returns a future that gets the roster item of jid from the first
    roster push (RFC 6121 § 2.1.6) that carries it."""
    pushed = asyncio.get_running_loop().create_future()

    def on_roster_update(iq):
        items = iq["roster"]["items"]
        if jid in items and not pushed.done():
            pushed.set_result(items[jid])

    xmpp.add_event_handler("roster_update", on_roster_update)
    return pushed


async def read_line(reader, timeout, what):
    """Reads one line of standard input within timeout seconds."""
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except asyncio.TimeoutError:
        raise Failure(f"no {what!r} on standard input after {timeout:.0f}s") from None
    if not line:
        raise Failure(f"standard input closed before {what!r}")
    return line.decode().strip()


async def stdin_reader():
    """Returns an asyncio reader of standard input, without threads."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def run(main, name):
    """Runs main(report) and turns its outcome into the exit status."""
    report = Reporter(name)
    try:
        asyncio.run(main(report))
    except Failure as e:
        print(f"{name}: FAIL: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    report.say("OK")
