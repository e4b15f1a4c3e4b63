package offline

import (
	"context"
	"errors"
	"time"
)

// expireChunk is the most rows one expiry commit deletes, so that a large
// backlog of old messages never holds the write lock for long.
const expireChunk = 1000

// runExpiry is the expiry goroutine: it deletes old messages every
// ExpireEvery, until Close. The first run waits a full period, so that a
// restart never races a test (or an operator) that is still filling the
// queue.
func (q *Queue) runExpiry() {
	defer q.wg.Done()

	t := time.NewTicker(q.opts.ExpireEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-q.stop:
			return
		}

		// A failed commit was logged by the committer, which alone knows
		// how often it has failed.
		if n, err := q.expire(context.Background()); err == nil && n > 0 {
			q.logger.Info("expired undelivered messages", "count", n,
				"max_age", q.opts.MaxAge.String())
		}
	}
}

// expire deletes every message stamped more than MaxAge before now, one
// chunk per commit, and returns how many it deleted.
func (q *Queue) expire(ctx context.Context) (int, error) {
	cutoff := q.opts.Now().Add(-q.opts.MaxAge).UnixNano()
	total := 0
	for {
		r := &request{op: opExpire, cutoff: cutoff, limit: expireChunk}
		if err := q.do(ctx, r); err != nil {
			if errors.Is(err, ErrClosed) {
				return total, nil
			}
			return total, err
		}
		total += r.n
		if r.n < expireChunk {
			return total, nil
		}
	}
}
