package offline

import (
	"context"
	"time"
)

// checkpointEvery is the shortest time between two background checkpoints.
//
// The writer's own automatic checkpoint (walAutocheckpoint) runs inside the
// commit that takes the WAL past its limit: that commit, and every sender
// waiting for it, waits until thousands of pages are copied into the
// database file and the file is synced, about 90 ms here, once every few
// seconds under load. A checkpoint on another connection copies the
// committed pages meanwhile without holding up any commit (a PASSIVE
// checkpoint never blocks the writer), so that the writer's checkpoint
// finds little left to copy. Only the writer's checkpoint lets the WAL
// start again from its beginning; it stays as the bound on the WAL's size.
const checkpointEvery = 250 * time.Millisecond

// runCheckpointer is the background checkpoint goroutine. It sleeps until a
// commit writes something, checkpoints, and waits checkpointEvery before the
// next, until Close.
func (q *Queue) runCheckpointer() {
	defer q.wg.Done()
	t := time.NewTimer(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-q.wrote:
		case <-q.stop:
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := q.db.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
		cancel()
		if err != nil {
			// The writer's own checkpoint still bounds the WAL.
			q.logger.Debug("background checkpoint failed", "err", err)
		}

		t.Reset(checkpointEvery)
		select {
		case <-t.C:
		case <-q.stop:
			return
		}
	}
}
