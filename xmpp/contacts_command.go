package xmpp

// The "Sync contacts" ad-hoc command (XEP-0050 with a XEP-0004 form), for
// clients without the Quicksy IQ: Gajim, Dino, Psi and others list the
// server's commands and render the form.

import (
	"fmt"
	"strings"

	"github.com/twotick/twotick/roster"
	"github.com/twotick/twotick/xmpp/wire"
)

const (
	nsCommands = "http://jabber.org/protocol/commands"
	nsData     = "jabber:x:data"

	syncNode = "sync-contacts"
	syncName = "Sync contacts"
	// syncField is the form's text-multi field: one number a line.
	syncField = "numbers"
)

// commandInfo is disco#info of the command node (XEP-0050 § 2.3).
func (srv *Server) commandInfo() *wire.Element {
	q := wire.New(nsDiscoInfo, "query", "node", syncNode)
	if srv.deps.Book == nil {
		return q
	}
	q.Add(wire.New(nsDiscoInfo, "identity", "category", "automation", "type", "command-node",
		"name", syncName))
	q.Add(wire.New(nsDiscoInfo, "feature", "var", nsCommands))
	q.Add(wire.New(nsDiscoInfo, "feature", "var", nsData))
	return q
}

// commandIQ runs the sync-contacts command (XEP-0050 § 3). It has one
// stage: execute returns the form, and a submitted form (with action
// execute, complete or none) runs the upload. No state is kept between
// the stages: the sessionid only pairs the answer with the form for the
// client, so a form submitted with any sessionid is accepted, and a
// client may even send the form with its first request.
func (s *Session) commandIQ(iq, cmd *wire.Element) {
	if iq.Get("type") != "set" || cmd.Name.Local != "command" {
		s.reply(iqError(iq, "cancel", "bad-request", "ad-hoc commands are run with an IQ set"))
		return
	}
	if cmd.Get("node") != syncNode || s.srv.deps.Book == nil {
		s.reply(iqError(iq, "cancel", "item-not-found", "no such command"))
		return
	}
	sid := cmd.Get("sessionid")
	if sid == "" {
		sid = randomID(12)
	}
	form := cmd.Child(nsData, "x")
	switch action := cmd.Get("action"); {
	case action == "cancel":
		s.reply(iqResult(iq, commandElement(sid, "canceled")))
	case action != "" && action != "execute" && action != "complete":
		// XEP-0050 § 4.6: the command has no previous or next stage.
		s.reply(iqError(iq, "modify", "bad-request", "this command has a single stage").
			Add(wire.New(nsCommands, "bad-action")))
	case form == nil:
		s.reply(iqResult(iq, commandElement(sid, "executing").Add(
			wire.New(nsCommands, "actions", "execute", "complete").
				Add(wire.New(nsCommands, "complete")),
			syncForm())))
	case form.Get("type") == "cancel":
		s.reply(iqResult(iq, commandElement(sid, "canceled")))
	default:
		s.runSyncCommand(iq, sid, form)
	}
}

func commandElement(sid, status string) *wire.Element {
	return wire.New(nsCommands, "command", "node", syncNode, "sessionid", sid, "status", status)
}

// syncForm is the form the command returns (XEP-0004 § 3.1).
func syncForm() *wire.Element {
	x := wire.New(nsData, "x", "type", "form")
	x.AddText(nsData, "title", syncName)
	x.AddText(nsData, "instructions", "Enter the phone numbers of your address book, one "+
		"a line, optionally with a name: \"+49 30 1234567, Anna\" or \"Anna: 030 1234567\". "+
		"Numbers without a country code are read as numbers of your own country. The list "+
		"replaces the one you gave before; contacts who have an account join your roster.")
	f := wire.New(nsData, "field", "var", syncField, "type", "text-multi",
		"label", "Phone numbers")
	f.AddText(nsData, "desc", "One number a line, optionally with a name.")
	f.Add(wire.New(nsData, "required"))
	return x.Add(f)
}

// runSyncCommand uploads the numbers of a submitted form and completes the
// command with a note of the outcome and the contacts found.
func (s *Session) runSyncCommand(iq *wire.Element, sid string, form *wire.Element) {
	var lines []string
	for _, f := range form.Children() {
		if f.Name.Local != "field" || f.Get("var") != syncField {
			continue
		}
		for _, v := range f.Children() {
			if v.Name.Local == "value" {
				lines = append(lines, strings.Split(v.Text(), "\n")...)
			}
		}
	}
	entries := ParseNumberLines(lines)
	ctx, cancel := storeCtx()
	defer cancel()
	res, pushes, err := s.srv.uploadBook(ctx, s.bare, entries)
	if err != nil {
		s.replyUploadError(iq, err)
		return
	}
	out := commandElement(sid, "completed")
	out.Add(wire.New(nsCommands, "note", "type", "info").Add(syncSummary(len(entries), res)))
	x := wire.New(nsData, "x", "type", "result")
	x.AddText(nsData, "title", syncName)
	f := wire.New(nsData, "field", "var", "matches", "type", "jid-multi",
		"label", "Contacts with an account")
	for _, m := range res.Matches {
		f.AddText(nsData, "value", m.JID)
	}
	s.reply(iqResult(iq, out.Add(x.Add(f))))
	s.srv.applyBookPushes(pushes())
}

// syncSummary is the note that completes the command.
func syncSummary(entries int, res roster.SyncResult) string {
	found := len(res.Matches) - res.OverCap
	msg := fmt.Sprintf("%d of %d entries %s an account and %s in your roster.",
		found, entries, plural(found, "has", "have"), plural(found, "is", "are"))
	if n := res.Skipped; n > 0 {
		msg += fmt.Sprintf(" Skipped %d %s.", n,
			plural(n, "entry that is not a phone number", "entries that are not phone numbers"))
	}
	if n := res.OverCap; n > 0 {
		msg += fmt.Sprintf(" %d %s left out because your roster is full.", n,
			plural(n, "contact was", "contacts were"))
	}
	return msg
}

// plural returns one if n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ParseNumberLines reads address book lines as the command's form and the
// HTTP endpoint's text/plain body take them: one entry a line, either a
// number alone, or a number and a name separated by the first ',', ';',
// ':' or tab, in either order ("+49 30 1234567, Anna", "Anna: 030
// 1234567"). The part made only of digits, spaces and + - ( ) . / is the
// number; if both parts are, the first is. Blank lines and lines starting
// with '#' are ignored. Numbers are returned as written: roster.Normalize
// reads them and counts the invalid ones.
func ParseNumberLines(lines []string) []roster.Entry {
	var out []roster.Entry
	for _, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, ",;:\t")
		if i < 0 {
			out = append(out, roster.Entry{Number: line})
			continue
		}
		a, b := strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
		if !looksLikeNumber(a) && looksLikeNumber(b) {
			a, b = b, a
		}
		out = append(out, roster.Entry{Number: a, Name: b})
	}
	return out
}

// looksLikeNumber reports whether s is written like a phone number: at
// least one digit and nothing but digits and the punctuation people put
// in numbers.
func looksLikeNumber(s string) bool {
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case strings.ContainsRune(" +-()./", r):
		default:
			return false
		}
	}
	return digits > 0
}
