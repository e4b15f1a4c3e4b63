// Package roster owns phone numbers, address books, matching, and roster
// items with their versions (RFC 6121 § 2, XEP-0237).
//
// It never imports package xmpp: changes are returned as values that the
// server turns into roster pushes and presence.
package roster
