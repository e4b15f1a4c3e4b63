package roster

// ownerLists keeps the owner lists of the numbers that several books
// hold, for bookIndex, without pointers: a list is a block in one of a few
// large arrays of uint64, named by a handle, so that the garbage collector
// sees a few dozen arrays to skip instead of a slice to walk for every
// number that two people know. A slice per list was most of the index's
// objects: three quarters of a million lists for 3,000 books of 1,000
// numbers drawn from 1,000,000.
//
// Class c holds blocks of 1 + 2<<c words: the list's length, then room for
// 2<<c owners. A list moves to the next class when it is full, and back
// when a quarter of it is left. Blocks sit in chunks of a fixed size that
// are never moved, so no growth copies more than one list. Owners are
// numKeys: never 0 and below 2^50.
type ownerLists struct {
	classes [listClasses]listClass
}

const (
	listClasses = 24      // up to 2<<23 owners in a list
	chunkWords  = 1 << 13 // 64 KiB
)

type listClass struct {
	chunks [][]uint64 // blocksPer(c) blocks each
	used   uint32     // blocks handed out, in use or freed
	free   []uint32   // freed blocks
}

// A handle is a list's class in the top bits and its block number below.
const handleBlockBits = 32

func blockWords(c int) int { return 1 + 2<<c }

func blocksPer(c int) int { return max(1, chunkWords/blockWords(c)) }

// block returns the words of the list named h: its length, then its room.
func (o *ownerLists) block(h uint64) []uint64 {
	c := int(h >> handleBlockBits)
	b := int(h & (1<<handleBlockBits - 1))
	per, w := blocksPer(c), blockWords(c)
	chunk := o.classes[c].chunks[b/per]
	off := (b % per) * w
	return chunk[off : off+w : off+w]
}

// owners returns the list named h. The slice is the list's own storage:
// good until the next change of the lists.
func (o *ownerLists) owners(h uint64) []uint64 {
	blk := o.block(h)
	return blk[1 : 1+blk[0]]
}

// alloc hands out an empty block of class c.
func (o *ownerLists) alloc(c int) uint64 {
	cl := &o.classes[c]
	var b uint32
	if n := len(cl.free); n > 0 {
		b = cl.free[n-1]
		cl.free = cl.free[:n-1]
	} else {
		b = cl.used
		cl.used++
		if int(b)%blocksPer(c) == 0 {
			cl.chunks = append(cl.chunks, make([]uint64, blocksPer(c)*blockWords(c)))
		}
	}
	h := uint64(c)<<handleBlockBits | uint64(b)
	o.block(h)[0] = 0
	return h
}

// release returns the block of h to its class.
func (o *ownerLists) release(h uint64) {
	cl := &o.classes[h>>handleBlockBits]
	cl.free = append(cl.free, uint32(h&(1<<handleBlockBits-1)))
}

// newList stores the list of a and b and returns its handle.
func (o *ownerLists) newList(a, b uint64) uint64 {
	h := o.alloc(0)
	blk := o.block(h)
	blk[0], blk[1], blk[2] = 2, a, b
	return h
}

// add appends owner, which the list must not hold, to the list named h and
// returns the list's handle, which changes when the list moves to a
// larger class.
func (o *ownerLists) add(h, owner uint64) uint64 {
	blk := o.block(h)
	n := blk[0]
	if int(n) == len(blk)-1 {
		h = o.move(h, int(h>>handleBlockBits)+1)
		blk = o.block(h)
	}
	blk[1+n] = owner
	blk[0] = n + 1
	return h
}

// remove takes the owner at index i out of the list named h, and returns
// the list's handle and its length. A list of one is released: its owner
// is the one left, and the caller keeps it without a list.
func (o *ownerLists) remove(h uint64, i int) (uint64, int) {
	blk := o.block(h)
	n := int(blk[0]) - 1
	blk[1+i] = blk[1+n]
	blk[1+n] = 0
	blk[0] = uint64(n)
	if n <= 1 {
		o.release(h)
		return 0, n
	}
	if c := int(h >> handleBlockBits); c > 0 && n <= (2<<c)/4 {
		h = o.move(h, c-1)
	}
	return h, n
}

// move copies the list named h into a new block of class c and releases
// the old one.
func (o *ownerLists) move(h uint64, c int) uint64 {
	nh := o.alloc(c)
	from, to := o.block(h), o.block(nh)
	copy(to, from[:1+from[0]])
	o.release(h)
	return nh
}

// lists counts the lists in use, for tests.
func (o *ownerLists) lists() int {
	n := 0
	for c := range o.classes {
		n += int(o.classes[c].used) - len(o.classes[c].free)
	}
	return n
}
