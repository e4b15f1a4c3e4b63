// Package register creates phone-number accounts by SMS verification: the
// verification codes and their abuse limits, the SMS gateways that deliver
// them, the Registrar that turns a verified number into an account, the
// XEP-0077 (In-Band Registration) form helpers, and the HTTP API that the
// Quicksy client uses.
//
// The package knows nothing of XMPP streams. The server offers the
// registration stream feature, routes jabber:iq:register IQs to
// RegistrationForm, ParseSubmission and Registrar.Submit, and turns errors
// into stanza errors with ErrorElement. Everything here is safe for
// concurrent use once configured.
//
// A code is 6 random digits, valid 10 minutes, good for one successful
// verification and at most 5 wrong guesses. Only an HMAC of it is stored;
// the only place the code itself is ever written is the LogGateway, which
// exists for development and tests.
package register
