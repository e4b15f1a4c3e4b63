package xmpp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Bounds on what one account may keep in PEP (README, "Personal eventing").
const (
	// pepMaxNodes is the most nodes an account may have.
	pepMaxNodes = 100
	// pepMaxItems is the largest pubsub#max_items a node may have; "max"
	// means this many.
	pepMaxItems = 1000
	// pepMaxItemBytes is the largest payload of one item, serialised.
	pepMaxItemBytes = 128 << 10
	// pepMaxAccountBytes bounds the payloads an account keeps in all its
	// nodes together, so that the caps above do not multiply into
	// gigabytes.
	pepMaxAccountBytes = 16 << 20
	// pepMaxNodeName and pepMaxItemID bound node names and item ids.
	pepMaxNodeName = 1024
	pepMaxItemID   = 256
)

// Errors of the PEP store, turned into stanza errors by pep.go.
var (
	errPEPNoNode       = errors.New("pep: no such node")
	errPEPNoItem       = errors.New("pep: no such item")
	errPEPTooManyNodes = errors.New("pep: too many nodes")
	errPEPQuota        = errors.New("pep: storage quota exceeded")
	errPEPPrecondition = errors.New("pep: publish-options precondition not met")
)

// Access models (XEP-0060 § 4.5) a PEP node may have.
const (
	pepOpen      = "open"
	pepPresence  = "presence"
	pepWhitelist = "whitelist" // with an empty whitelist: the owner alone
)

// pepConfig is a node's configuration: the fields publish-options may set.
type pepConfig struct {
	access   string // pepOpen, pepPresence or pepWhitelist
	maxItems int    // 1..pepMaxItems
	persist  bool   // items are kept (otherwise only notified)
	sendLast bool   // the last item goes to contacts that come online
}

// pepDefaults is the configuration of an auto-created node (XEP-0163 § 4).
var pepDefaults = pepConfig{access: pepPresence, maxItems: 1, persist: true, sendLast: true}

// pepItem is one published item.
type pepItem struct {
	node    string
	id      string
	payload []byte // the payload element, serialised with its namespace
}

// pepStore keeps PEP nodes and items in SQLite. It is safe for concurrent
// use: each change is one transaction.
type pepStore struct {
	db *sql.DB
}

func openPEPStore(ctx context.Context, db *sql.DB) (*pepStore, error) {
	_, err := db.ExecContext(ctx, `
		CREATE TABLE IF NOT EXISTS pep_nodes (
			owner     TEXT NOT NULL,
			node      TEXT NOT NULL,
			access    TEXT NOT NULL,
			max_items INTEGER NOT NULL,
			persist   INTEGER NOT NULL,
			send_last INTEGER NOT NULL,
			PRIMARY KEY (owner, node));
		CREATE TABLE IF NOT EXISTS pep_items (
			owner   TEXT NOT NULL,
			node    TEXT NOT NULL,
			id      TEXT NOT NULL,
			seq     INTEGER NOT NULL,
			payload BLOB NOT NULL,
			PRIMARY KEY (owner, node, id),
			FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node)
				ON DELETE CASCADE);
		CREATE INDEX IF NOT EXISTS pep_items_seq ON pep_items (owner, node, seq);`)
	if err != nil {
		return nil, fmt.Errorf("creating pep tables: %w", err)
	}
	return &pepStore{db: db}, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

func loadNode(ctx context.Context, q querier, owner, node string) (pepConfig, bool, error) {
	var c pepConfig
	err := q.QueryRowContext(ctx, `SELECT access, max_items, persist, send_last
		FROM pep_nodes WHERE owner = ? AND node = ?`, owner, node).
		Scan(&c.access, &c.maxItems, &c.persist, &c.sendLast)
	if errors.Is(err, sql.ErrNoRows) {
		return pepConfig{}, false, nil
	}
	if err != nil {
		return pepConfig{}, false, fmt.Errorf("loading pep node %s of %s: %w", node, owner, err)
	}
	return c, true, nil
}

// node returns the configuration of owner's node; ok is false if there is
// no such node.
func (st *pepStore) node(ctx context.Context, owner, node string) (pepConfig, bool, error) {
	return loadNode(ctx, st.db, owner, node)
}

// publish stores it in owner's node, creating the node with the defaults
// overridden by opts when it does not exist. An existing node whose
// configuration differs from opts refuses with errPEPPrecondition
// (XEP-0060 § 7.1.5). Past the node's max_items the oldest items go. It
// returns the node's configuration.
func (st *pepStore) publish(ctx context.Context, owner string, opts pepOptions,
	it pepItem) (pepConfig, error) {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return pepConfig{}, fmt.Errorf("publishing to pep node %s of %s: %w", it.node, owner, err)
	}
	defer tx.Rollback()

	cfg, ok, err := loadNode(ctx, tx, owner, it.node)
	if err != nil {
		return pepConfig{}, err
	}
	if ok && !opts.met(cfg) {
		return cfg, errPEPPrecondition
	}
	if !ok {
		cfg = opts.apply(pepDefaults)
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM pep_nodes WHERE owner = ?`,
			owner).Scan(&n); err != nil {
			return pepConfig{}, fmt.Errorf("counting pep nodes of %s: %w", owner, err)
		}
		if n >= pepMaxNodes {
			return pepConfig{}, errPEPTooManyNodes
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO pep_nodes
			(owner, node, access, max_items, persist, send_last) VALUES (?, ?, ?, ?, ?, ?)`,
			owner, it.node, cfg.access, cfg.maxItems, cfg.persist, cfg.sendLast); err != nil {
			return pepConfig{}, fmt.Errorf("creating pep node %s of %s: %w", it.node, owner, err)
		}
	}
	if cfg.persist {
		if err := storeItem(ctx, tx, owner, cfg, it); err != nil {
			return pepConfig{}, err
		}
	}
	if err := tx.Commit(); err != nil {
		return pepConfig{}, fmt.Errorf("publishing to pep node %s of %s: %w", it.node, owner, err)
	}
	return cfg, nil
}

// storeItem writes it as the newest item of its node, drops the items past
// max_items, and checks the account's quota. tx is rolled back by the
// caller on error.
func storeItem(ctx context.Context, tx *sql.Tx, owner string, cfg pepConfig, it pepItem) error {
	if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO pep_items
		(owner, node, id, seq, payload) VALUES (?, ?, ?,
		(SELECT COALESCE(MAX(seq), 0) + 1 FROM pep_items WHERE owner = ? AND node = ?), ?)`,
		owner, it.node, it.id, owner, it.node, it.payload); err != nil {
		return fmt.Errorf("storing pep item in %s of %s: %w", it.node, owner, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ?
		AND seq <= (SELECT seq FROM pep_items WHERE owner = ? AND node = ?
			ORDER BY seq DESC LIMIT 1 OFFSET ?)`,
		owner, it.node, owner, it.node, cfg.maxItems); err != nil {
		return fmt.Errorf("trimming pep node %s of %s: %w", it.node, owner, err)
	}
	var total int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(LENGTH(payload)), 0)
		FROM pep_items WHERE owner = ?`, owner).Scan(&total); err != nil {
		return fmt.Errorf("measuring pep storage of %s: %w", owner, err)
	}
	if total > pepMaxAccountBytes {
		return errPEPQuota
	}
	return nil
}

// items returns items of owner's node, newest first: those named in ids,
// or else the newest max (all when max is 0).
func (st *pepStore) items(ctx context.Context, owner, node string, max int,
	ids []string) ([]pepItem, error) {
	if max <= 0 {
		max = -1
	}
	rows, err := st.db.QueryContext(ctx, `SELECT id, payload FROM pep_items
		WHERE owner = ? AND node = ? ORDER BY seq DESC LIMIT ?`, owner, node, max)
	if err != nil {
		return nil, fmt.Errorf("loading pep items of %s in %s: %w", owner, node, err)
	}
	defer rows.Close()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	var out []pepItem
	for rows.Next() {
		it := pepItem{node: node}
		if err := rows.Scan(&it.id, &it.payload); err != nil {
			return nil, fmt.Errorf("loading pep items of %s in %s: %w", owner, node, err)
		}
		if len(ids) == 0 || want[it.id] {
			out = append(out, it)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading pep items of %s in %s: %w", owner, node, err)
	}
	return out, nil
}

// pepLast is the last item of a node with the node's configuration.
type pepLast struct {
	pepItem
	cfg pepConfig
}

// lastItems returns the newest item of each of owner's nodes that has one.
func (st *pepStore) lastItems(ctx context.Context, owner string) ([]pepLast, error) {
	rows, err := st.db.QueryContext(ctx, `SELECT n.node, n.access, n.max_items, n.persist,
		n.send_last, i.id, i.payload FROM pep_nodes n JOIN pep_items i
		ON i.owner = n.owner AND i.node = n.node
		WHERE n.owner = ? AND i.seq = (SELECT MAX(seq) FROM pep_items
			WHERE owner = n.owner AND node = n.node)
		ORDER BY n.node`, owner)
	if err != nil {
		return nil, fmt.Errorf("loading last pep items of %s: %w", owner, err)
	}
	defer rows.Close()
	var out []pepLast
	for rows.Next() {
		var l pepLast
		if err := rows.Scan(&l.node, &l.cfg.access, &l.cfg.maxItems, &l.cfg.persist,
			&l.cfg.sendLast, &l.id, &l.payload); err != nil {
			return nil, fmt.Errorf("loading last pep items of %s: %w", owner, err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("loading last pep items of %s: %w", owner, err)
	}
	return out, nil
}

// retract removes one item: errPEPNoNode or errPEPNoItem when there is
// nothing to remove.
func (st *pepStore) retract(ctx context.Context, owner, node, id string) error {
	res, err := st.db.ExecContext(ctx, `DELETE FROM pep_items
		WHERE owner = ? AND node = ? AND id = ?`, owner, node, id)
	if err != nil {
		return fmt.Errorf("retracting pep item of %s in %s: %w", owner, node, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	if _, ok, err := st.node(ctx, owner, node); err != nil {
		return err
	} else if !ok {
		return errPEPNoNode
	}
	return errPEPNoItem
}

// deleteNode removes a node and its items; errPEPNoNode if there is none.
func (st *pepStore) deleteNode(ctx context.Context, owner, node string) error {
	// The items go first, so that nothing depends on foreign keys being on.
	if _, err := st.db.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ?`,
		owner, node); err != nil {
		return fmt.Errorf("deleting pep node %s of %s: %w", node, owner, err)
	}
	res, err := st.db.ExecContext(ctx, `DELETE FROM pep_nodes WHERE owner = ? AND node = ?`,
		owner, node)
	if err != nil {
		return fmt.Errorf("deleting pep node %s of %s: %w", node, owner, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errPEPNoNode
	}
	return nil
}

// configure changes owner's node with opts (XEP-0060 § 8.2) and drops the
// items past a lowered max_items, or all of them when persist_items goes
// off. errPEPNoNode if there is no such node.
func (st *pepStore) configure(ctx context.Context, owner, node string, opts pepOptions) error {
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("configuring pep node %s of %s: %w", node, owner, err)
	}
	defer tx.Rollback()
	cfg, ok, err := loadNode(ctx, tx, owner, node)
	if err != nil {
		return err
	}
	if !ok {
		return errPEPNoNode
	}
	cfg = opts.apply(cfg)
	if _, err := tx.ExecContext(ctx, `UPDATE pep_nodes SET access = ?, max_items = ?,
		persist = ?, send_last = ? WHERE owner = ? AND node = ?`,
		cfg.access, cfg.maxItems, cfg.persist, cfg.sendLast, owner, node); err != nil {
		return fmt.Errorf("configuring pep node %s of %s: %w", node, owner, err)
	}
	keep := cfg.maxItems
	if !cfg.persist {
		keep = 0
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ?
		AND seq NOT IN (SELECT seq FROM pep_items WHERE owner = ? AND node = ?
			ORDER BY seq DESC LIMIT ?)`, owner, node, owner, node, keep); err != nil {
		return fmt.Errorf("trimming pep node %s of %s: %w", node, owner, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("configuring pep node %s of %s: %w", node, owner, err)
	}
	return nil
}

// forget removes every node and item of owner, for a deleted account: a
// later account with the same JID (a recycled phone number) must not
// inherit its keys or avatar.
func (st *pepStore) forget(ctx context.Context, owner string) error {
	if _, err := st.db.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ?`,
		owner); err != nil {
		return fmt.Errorf("deleting pep items of %s: %w", owner, err)
	}
	if _, err := st.db.ExecContext(ctx, `DELETE FROM pep_nodes WHERE owner = ?`,
		owner); err != nil {
		return fmt.Errorf("deleting pep nodes of %s: %w", owner, err)
	}
	return nil
}
