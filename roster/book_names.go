package roster

// nameStore keeps the names that owners gave the numbers of their books,
// for bookIndex, without pointers: the names' bytes sit one after another
// in chunks of a megabyte, and a map without pointers leads from {owner,
// number} to a name's place. A map of strings held a pointer the garbage
// collector followed for every entry of every book, and a string to
// allocate; real address books name nearly every entry.
//
// Removing or renaming leaves the old bytes behind as dead; once they
// outweigh the live ones, the next change copies the live names into new
// chunks (compact).
type nameStore struct {
	refs   map[[2]uint64]uint64 // {owner, number} -> nameRef
	chunks [][]byte
	live   int // bytes of the names in refs
	dead   int // bytes in chunks that no name uses
}

// A name's place: its chunk, its offset in the chunk and its length.
const (
	nameLenBits = 10 // maxNameBytes is 1,023
	nameOffBits = 20
	nameChunk   = 1 << nameOffBits
)

// minCompacted is the dead bytes below which set leaves the chunks alone;
// tests lower it.
var minCompacted = 4 << 20

func newNameStore() nameStore { return nameStore{refs: map[[2]uint64]uint64{}} }

func (s *nameStore) len() int { return len(s.refs) }

// get returns the name owner gave number, or "".
func (s *nameStore) get(owner, number uint64) string {
	ref, ok := s.refs[[2]uint64{owner, number}]
	if !ok {
		return ""
	}
	return string(s.bytes(ref))
}

func (s *nameStore) bytes(ref uint64) []byte {
	n := int(ref & (1<<nameLenBits - 1))
	off := int(ref >> nameLenBits & (1<<nameOffBits - 1))
	c := s.chunks[ref>>(nameLenBits+nameOffBits)]
	return c[off : off+n]
}

// set records name (at most maxNameBytes long) for owner's number; an
// empty name removes it.
func (s *nameStore) set(owner, number uint64, name string) {
	key := [2]uint64{owner, number}
	old, had := s.refs[key]
	if name == "" {
		if had {
			s.drop(old)
			delete(s.refs, key)
		}
		return
	}
	if had {
		if string(s.bytes(old)) == name {
			return
		}
		s.drop(old)
	}
	s.refs[key] = putName(s, name)
	s.live += len(name)
	if s.dead > s.live && s.dead > minCompacted {
		s.compact()
	}
}

// drop counts the bytes of ref as dead.
func (s *nameStore) drop(ref uint64) {
	n := int(ref & (1<<nameLenBits - 1))
	s.live -= n
	s.dead += n
}

// putName appends name to s's last chunk, or to a new one when it does not
// fit (what was left of the last one counts as dead), and returns its
// place.
func putName[T string | []byte](s *nameStore, name T) uint64 {
	last := len(s.chunks) - 1
	if last < 0 || len(s.chunks[last])+len(name) > nameChunk {
		if last >= 0 {
			s.dead += nameChunk - len(s.chunks[last])
		}
		s.chunks = append(s.chunks, make([]byte, 0, nameChunk))
		last++
	}
	c := s.chunks[last]
	off := len(c)
	s.chunks[last] = append(c, name...)
	return uint64(last)<<(nameLenBits+nameOffBits) | uint64(off)<<nameLenBits | uint64(len(name))
}

// compact copies the live names into new chunks.
func (s *nameStore) compact() {
	old := *s
	s.chunks, s.live, s.dead = nil, 0, 0
	for key, ref := range old.refs {
		name := old.bytes(ref)
		s.refs[key] = putName(s, name)
		s.live += len(name)
	}
}
