package offline

// schema creates the queue's table and indexes.
//
// AUTOINCREMENT keeps SQLite from reusing the ID of a deleted newest row:
// with reuse, a late acknowledgement of an old message could delete a new
// one that was never delivered.
//
// The (recipient, id) index serves Pending, Count, the cap and the receipt
// purge; the stamp index lets expiry find old rows without a scan.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS offline_messages (
		id        INTEGER PRIMARY KEY AUTOINCREMENT,
		recipient TEXT    NOT NULL,
		sender    TEXT    NOT NULL,
		client_id TEXT    NOT NULL,
		stanza_id TEXT    NOT NULL,
		stamp     INTEGER NOT NULL, -- Unix nanoseconds
		payload   BLOB    NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS offline_messages_recipient
		ON offline_messages (recipient, id)`,
	`CREATE INDEX IF NOT EXISTS offline_messages_stamp
		ON offline_messages (stamp)`,
}

const (
	pendingSQL = `SELECT id, sender, client_id, stanza_id, stamp, payload
		FROM offline_messages
		WHERE recipient = ? AND id > ?
		ORDER BY id LIMIT ?`

	countSQL = `SELECT COUNT(*) FROM offline_messages WHERE recipient = ?`

	insertSQL = `INSERT INTO offline_messages
		(recipient, sender, client_id, stanza_id, stamp, payload)
		VALUES (?, ?, ?, ?, ?, ?)`

	// deleteSQL finds the row by its primary key; the recipient test keeps
	// one user from deleting another's messages.
	deleteSQL = `DELETE FROM offline_messages WHERE id = ? AND recipient = ?`

	// deleteManySQL is deleteSQL for a JSON array of IDs.
	deleteManySQL = `DELETE FROM offline_messages
		WHERE recipient = ? AND id IN (SELECT value FROM json_each(?))`

	deleteClientIDSQL = `DELETE FROM offline_messages
		WHERE recipient = ? AND sender = ? AND client_id = ?
		RETURNING id`

	// expireSQL deletes at most a chunk of old rows, so that one expiry
	// run never holds the write lock for long.
	expireSQL = `DELETE FROM offline_messages
		WHERE id IN (
			SELECT id FROM offline_messages WHERE stamp < ?
			ORDER BY stamp LIMIT ?)
		RETURNING recipient`
)
