package roster

import "encoding/binary"

// The index keeps the names an owner gave the numbers of their book in
// one byte slice per owner (packNames), not one string per entry: real
// address books name nearly every entry, and a string per entry was a
// pointer for the garbage collector to follow and an allocation, and a
// map entry keyed by owner and number, whose random accesses made adding
// a book three times as slow as without names. An upload replaces its
// owner's slice in one sequential pass over the sorted book.
//
// Layout: the count n (4 bytes), n numbers in ascending order (8 bytes
// each), the end of each name in the text (4 bytes each), then the names'
// bytes one after another; all little-endian. Only named entries are in
// it; nil if none is.

// packNames returns the names of the sorted book, packed.
func packNames(book []bookEntry) []byte {
	n, text := 0, 0
	for _, e := range book {
		if e.name != "" {
			n++
			text += len(e.name)
		}
	}
	if n == 0 {
		return nil
	}
	out := make([]byte, 4+12*n, 4+12*n+text)
	binary.LittleEndian.PutUint32(out, uint32(n))
	keys, ends := out[4:4+8*n], out[4+8*n:]
	i, end := 0, 0
	for _, e := range book {
		if e.name == "" {
			continue
		}
		binary.LittleEndian.PutUint64(keys[8*i:], e.k)
		end += len(e.name)
		binary.LittleEndian.PutUint32(ends[4*i:], uint32(end))
		out = append(out, e.name...)
		i++
	}
	return out
}

// nameIn returns the name of number k in packed names, or "".
func nameIn(packed []byte, k uint64) string {
	if len(packed) < 4 {
		return ""
	}
	n := int(binary.LittleEndian.Uint32(packed))
	keys := packed[4 : 4+8*n]
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if binary.LittleEndian.Uint64(keys[8*m:]) < k {
			lo = m + 1
		} else {
			hi = m
		}
	}
	i := lo
	if i == n || binary.LittleEndian.Uint64(keys[8*i:]) != k {
		return ""
	}
	ends, text := packed[4+8*n:4+12*n], packed[4+12*n:]
	start := 0
	if i > 0 {
		start = int(binary.LittleEndian.Uint32(ends[4*(i-1):]))
	}
	return string(text[start:binary.LittleEndian.Uint32(ends[4*i:])])
}
