// Package auth owns twotick's accounts and their authentication: the account
// store with SCRAM salted credentials (never a password), the SASL server
// mechanisms a stream negotiates, and the throttle on failed logins.
//
// Mechanisms: SCRAM-SHA-1 and SCRAM-SHA-1-PLUS (RFC 5802), SCRAM-SHA-256 and
// SCRAM-SHA-256-PLUS (RFC 7677) with the tls-exporter channel binding
// (RFC 9266), and PLAIN (RFC 4616) over TLS only.
//
// The server side is our own state machine rather than mellium.im/sasl's
// Negotiator: mellium's server panics for the -PLUS mechanisms, wants the
// SaltedPassword (which is a password equivalent, so storing it would break
// "passwords are never stored"), reports failures as plain errors without an
// RFC 6120 § 6.5 condition, and cannot tell the caller which account was
// authenticated. mellium.im/sasl's client is used in the tests to prove that
// a third-party SCRAM implementation interoperates with ours.
//
// This package must not import github.com/twotick/twotick/xmpp: the stream
// code imports it, not the other way around.
package auth
