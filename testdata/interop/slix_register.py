"""slixmpp side of twotick's registration interoperability test.

Registers a new account in-band (XEP-0077) with slixmpp's xep_0077 plugin,
as a client with a "register on server" option does: it asks for the
registration form, submits the phone number and a password without a code
and expects an error telling it to submit again with the code; it reads the
code that the server's log gateway wrote to --code-log, submits the form
again with it, and expects success. The same stream then logs in with SCRAM
as the new account, fetches its roster and logs out. Exit status 0 means
all of that happened within --timeout seconds.

With --stay it does not log out: it prints "online" and waits for the
server to end the session with a not-authorized stream error, as it does
when the number registers again elsewhere and the password is replaced.

Run it with Debian's /usr/bin/python3: python3-slixmpp installs there.
"""

import argparse
import asyncio
import re

import slixmpp

from slixcommon import Failure, fetch_roster, login, logout
from slixcommon import new_client, run

NAME = "slixmpp-register"
NS_REGISTER = "jabber:iq:register"


async def read_code(path, number, timeout):
    """Waits, within timeout seconds, for the log gateway's line
    "code for <number> is <code>" in the file at path; returns the last
    code logged for the number."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pattern = re.compile(r"code for (\+[0-9]+) is ([0-9]{6})")
    while True:
        code = None
        try:
            with open(path, encoding="utf-8") as f:
                for m in pattern.finditer(f.read()):
                    if m.group(1) == number:
                        code = m.group(2)
        except FileNotFoundError:
            pass
        if code is not None:
            return code
        if loop.time() > deadline:
            raise Failure(f"no code for {number} in {path} within {timeout:.0f}s")
        await asyncio.sleep(0.05)  # polling a file, bounded by the deadline


def form_fields(form_iq):
    """Returns the variables of the data form in a registration form."""
    form = form_iq["register"]["form"]
    return {name for name in form.get_fields()}


async def submit(xmpp, number, password, code, timeout):
    """Submits the registration form; returns the answer or raises IqError."""
    iq = xmpp.Iq()
    iq["type"] = "set"
    form = xmpp["xep_0004"].make_form(ftype="submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value=NS_REGISTER)
    form.add_field(var="phone", value=number)
    form.add_field(var="password", value=password)
    if code:
        form.add_field(var="code", value=code)
    iq["register"].append(form)
    return await iq.send(timeout=timeout)


async def register(xmpp, form_iq, args, report, left):
    """Runs the two submissions of twotick's XEP-0077 flow."""
    fields = form_fields(form_iq)
    if not {"phone", "password", "code"} <= fields:
        raise Failure(f"registration form has fields {sorted(fields)}")
    report.say("got the registration form")

    try:
        await submit(xmpp, args.number, args.password, "", left())
        raise Failure("submission without a code succeeded")
    except slixmpp.exceptions.IqError as e:
        cond, text = e.iq["error"]["condition"], e.iq["error"]["text"]
        if cond != "not-acceptable" or "code" not in text:
            raise Failure(f"submission without a code answered {cond}: {text!r}") from None
        report.say(f"server asked for the code: {text!r}")

    code = await read_code(args.code_log, args.number, left())
    report.say("read the code from the log gateway")
    try:
        await submit(xmpp, args.number, args.password, code, left())
    except slixmpp.exceptions.IqError as e:
        raise Failure(f"submission with the code answered "
                      f"{e.iq['error']['condition']}") from None
    report.say(f"registered {args.number}")


async def scenario(args, report):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout

    def left():
        return max(0.1, deadline - loop.time())

    xmpp = new_client(args.jid, args.password, plugins=("xep_0077",))
    xmpp["xep_0077"].create_account = True
    outcome = loop.create_future()

    async def on_register(form_iq):
        try:
            await register(xmpp, form_iq, args, report, left)
            outcome.set_result(None)
        except Exception as e:  # reported by the scenario, not slixmpp's log
            outcome.set_exception(e if isinstance(e, Failure) else Failure(repr(e)))
            xmpp.disconnect()
        finally:
            xmpp._always_send_everything = False

    async def on_register_feature(features):
        # slixmpp 1.8 holds back every IQ but bind and session until the
        # session has started, so its own xep_0077 plugin cannot send the
        # registration IQs that XEP-0077 § 3.1 requires before login; later
        # slixmpp releases let jabber:iq:register through. This lifts the
        # hold for the registration only.
        xmpp._always_send_everything = True
        return await xep_0077_feature(features)

    xep_0077 = xmpp["xep_0077"]
    xep_0077_feature = xep_0077._handle_register_feature
    xmpp.unregister_feature("register", xep_0077.order)
    xmpp.register_feature("register", on_register_feature, restart=False,
                          order=xep_0077.order)
    xmpp.add_event_handler("register", on_register)
    try:
        await login(xmpp, args.host, args.port, left(), report)
    except Failure:
        if outcome.done() and outcome.exception():
            raise outcome.exception() from None
        raise
    if not outcome.done():
        raise Failure("logged in without being offered in-band registration")
    outcome.result()

    await fetch_roster(xmpp, left(), report)
    if args.stay:
        await wait_closed(xmpp, left(), report)
        return
    await logout(xmpp, min(5.0, left()))


async def wait_closed(xmpp, timeout, report):
    """Stays online until the server ends the stream with not-authorized."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()

    def on_stream_error(err):
        if not closed.done():
            closed.set_result(err["condition"])

    def on_disconnected(_reason):
        if not closed.done():
            closed.set_result(None)

    xmpp.add_event_handler("stream_error", on_stream_error)
    xmpp.add_event_handler("disconnected", on_disconnected)
    xmpp.send_presence()
    report.say("online")
    try:
        cond = await asyncio.wait_for(closed, timeout)
    except asyncio.TimeoutError:
        raise Failure(f"session still open after {timeout:.0f}s") from None
    if cond != "not-authorized":
        raise Failure(f"session ended with {cond!r}, want a not-authorized stream error")
    report.say("session closed by the server: not-authorized")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jid", required=True, help="account to create: +E164@domain")
    p.add_argument("--number", required=True, help="its phone number, E.164")
    p.add_argument("--password", required=True)
    p.add_argument("--code-log", required=True, help="the log gateway's sms.log_file")
    p.add_argument("--host", default="127.0.0.1", help="server address")
    p.add_argument("--port", type=int, default=5222, help="STARTTLS c2s port")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds the whole scenario may take")
    p.add_argument("--stay", action="store_true",
                   help="stay online until the server closes the session")
    args = p.parse_args()
    run(lambda report: scenario(args, report), NAME)


if __name__ == "__main__":
    main()
