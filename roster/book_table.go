package roster

// numTable maps E.164 numbers (as numKey integers) to a uint64: the
// holders of each number in bookIndex. It is an open-addressing hash table
// with linear probing over one array of key and value pairs, so that a
// lookup or an insert costs one probe sequence that usually stays within
// one cache line. Go's map took two probes for an insert (a read, then
// the assignment) and was what an upload of a thousand new numbers spent
// most of its index time on, missing the cache on a table of a million.
// It holds no pointers, so the garbage collector never walks it. Key 0 is
// never a number and marks an empty slot.
//
// The table is split into shards by the top bits of a key's hash, each
// growing on its own: doubling a table of ten million numbers at once
// copied 160 MB and held every upload for 170 ms behind the write lock,
// while a shard's growth copies a thousandth of that.
type numTable struct {
	shards []numShard // numShards long, or empty
}

// numShards is how many shards a numTable has; shardBits its log2.
const (
	shardBits = 10
	numShards = 1 << shardBits
)

// minShard is the smallest shard, in slots: small, so that an index of a
// few books stays small.
const minShard = 16

type numShard struct {
	slots []numSlot // a power of two long, or empty
	n     int       // keys in use
}

type numSlot struct{ k, v uint64 }

// mix spreads the bits of a key (the finaliser of MurmurHash3), since
// numbers of one area differ only in their last digits.
func mix(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// len counts the keys, shard by shard; only tests ask.
func (t *numTable) len() int {
	n := 0
	for i := range t.shards {
		n += t.shards[i].n
	}
	return n
}

// shard returns the shard of k, with k's hash, creating the shards if
// create is set; it returns nil if they do not exist yet.
func (t *numTable) shard(k uint64, create bool) (*numShard, uint64) {
	if t.shards == nil {
		if !create {
			return nil, 0
		}
		t.shards = make([]numShard, numShards)
	}
	h := mix(k)
	return &t.shards[h>>(64-shardBits)], h
}

// get returns the value of k.
func (t *numTable) get(k uint64) (uint64, bool) {
	sh, h := t.shard(k, false)
	if sh == nil {
		return 0, false
	}
	return sh.get(k, h)
}

// ref returns where the value of k is kept, adding k with value 0 if it
// is absent (added). The pointer is good until the next ref or del.
func (t *numTable) ref(k uint64) (v *uint64, added bool) {
	sh, h := t.shard(k, true)
	return sh.ref(k, h)
}

// del removes k.
func (t *numTable) del(k uint64) {
	if sh, h := t.shard(k, false); sh != nil {
		sh.del(k, h)
	}
}

// touch reads the slot where a lookup of k starts, and returns it mixed
// into acc. A loop of touches has no load that waits for another, so the
// processor fetches many slots from memory at once; the lookups that
// follow then find them in its cache (see bookIndex.replace).
func (t *numTable) touch(k, acc uint64) uint64 {
	sh, h := t.shard(k, false)
	if sh == nil || len(sh.slots) == 0 {
		return acc
	}
	s := &sh.slots[h&uint64(len(sh.slots)-1)]
	return acc ^ s.k ^ s.v
}

// get returns the value of k, whose hash is h.
func (t *numShard) get(k, h uint64) (uint64, bool) {
	if len(t.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.k == k {
			return s.v, true
		}
		if s.k == 0 {
			return 0, false
		}
	}
}

// ref is numTable.ref within the shard; h is k's hash.
func (t *numShard) ref(k, h uint64) (v *uint64, added bool) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.k == k {
			return &s.v, false
		}
		if s.k == 0 {
			s.k = k
			t.n++
			return &s.v, true
		}
	}
}

// del removes k, whose hash is h, shifting back the keys after it that
// probed past its slot, so that no lookup stops early at the hole.
func (t *numShard) del(k, h uint64) {
	if len(t.slots) == 0 {
		return
	}
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for ; t.slots[i].k != k; i = (i + 1) & mask {
		if t.slots[i].k == 0 {
			return
		}
	}
	for j := (i + 1) & mask; t.slots[j].k != 0; j = (j + 1) & mask {
		// The key at j may fill the hole at i if i lies on its probe
		// path: no farther from its home slot than j is.
		home := mix(t.slots[j].k) & mask
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = numSlot{}
	t.n--
}

// grow doubles the shard (at least minShard slots) and reinserts every
// key.
func (t *numShard) grow() {
	old := t.slots
	t.slots = make([]numSlot, max(2*len(old), minShard))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.k == 0 {
			continue
		}
		i := mix(s.k) & mask
		for t.slots[i].k != 0 {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}
