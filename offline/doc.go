// Package offline is twotick's durable message queue: the store half of
// store-and-forward, and the single source of truth for every message that
// its recipient has not yet acknowledged (see "The two checks" in
// DESIGN.md).
//
// # Guarantees
//
// When [Queue.Enqueue] returns nil, the message is committed to the SQLite
// database with the durability of the configured synchronous mode (below),
// and only then may the server acknowledge it to the sender with XEP-0198
// <a h=…/>. Any other outcome is an error, never a false success:
//
//   - [ErrQueueFull]: the recipient already holds [Options.MaxPerUser]
//     messages; the sender gets a resource-constraint error.
//   - [ErrUnavailable]: the transaction or its sync failed (I/O error, disk
//     full, database busy for longer than its busy timeout). Every message
//     of the failed group gets this error, the queue reports itself
//     unhealthy through [Queue.Healthy] until a later commit succeeds, and
//     the failed group is not retried. The sender gets a wait error and
//     sends again. A commit whose sync failed may still have reached the
//     disk, so such a message can reappear after a restart; clients drop the
//     duplicate by its id, which is the safe direction to err in.
//   - the caller's context error, when ctx ends while the message waits for
//     its commit. The message may still be committed later; the caller must
//     treat it as not acknowledged.
//
// Messages of one recipient are delivered by [Queue.Pending] in the order of
// their IDs, which is the order in which they were committed. IDs are never
// reused, even after the newest message is deleted, so that a stale
// acknowledgement can never remove a newer message.
//
// [Queue.Delete] removes acknowledged messages and touches only rows
// addressed to the recipient named in the call. Undelivered messages older
// than [Options.MaxAge] are deleted by a background goroutine.
//
// # Group commit
//
// A durable commit costs one sync of the write-ahead log, which takes
// hundreds of microseconds to milliseconds. The queue therefore has a single
// committer goroutine that owns one dedicated database connection. Callers
// of Enqueue, Delete and the expiry goroutine hand it requests; each time it
// wakes it takes every request that arrived meanwhile, writes them all in
// one transaction ending in one sync, and then wakes every caller with the
// outcome. Under load, a group holds as many messages as there are senders
// waiting, so the sync cost per message shrinks as the load grows.
//
// The committer is also the only writer of the queue's table, which lets it
// keep each recipient's message count in memory (loaded lazily, dropped when
// it reaches zero, forgotten entirely after a failed commit) so that the cap
// costs no COUNT(*) per message.
//
// # Synchronous modes
//
// The database runs in WAL mode. [Options.Synchronous] sets SQLite's
// PRAGMA synchronous on the committer's connection only:
//
//   - "full" (default): the WAL is synced at every commit. Neither a crash
//     of the process nor a power cut or kernel crash loses a committed
//     message, provided the disk honours its flush command.
//   - "normal": the WAL is synced only when it is checkpointed into the
//     database file. A crash of the process loses nothing, because committed
//     data is already in the operating system's cache; a power cut or kernel
//     crash can roll back the last commits, losing messages that senders
//     were told are stored. The database stays consistent.
//   - "off": nothing is synced. A crash of the process loses nothing; a
//     power cut or kernel crash can lose recent commits and can corrupt the
//     database file.
//
// Other connections of the same *sql.DB keep the mode of their DSN, and a
// checkpoint runs with the mode of the connection that triggers it. The
// committer lets the WAL grow to about 10,000 pages (40 MB with 4 KiB pages)
// before it checkpoints, which makes checkpoints rarer and cheaper per
// message; a crash never loses what the WAL holds. A background goroutine
// checkpoints on another connection meanwhile, without blocking commits,
// so that the committer's own checkpoint finds little left to copy.
//
// # Costs
//
// Enqueue, Delete and Pending cost O(log n) per message in the number of
// queued messages n, through an index on (recipient, id).
// [Queue.DeleteByClientID] scans the recipient's queued messages, which is
// cheap because a recipient who sends receipts is online and draining.
//
// A Queue is safe for concurrent use. It holds one connection of the *sql.DB
// for its whole life, so the pool must allow at least two.
package offline
