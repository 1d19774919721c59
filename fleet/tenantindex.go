package fleet

import (
	"encoding/binary"
	"hash/maphash"
	"unsafe"
)

// tenantIndex numbers a tracker's tenants in the order they first
// reported and finds a tenant's number by name. It is what a tracker holds
// per tenant, so it is compact: the entries in pages (never copied as they
// grow), the names one after the other in an arena, and an open-addressing
// table of entry numbers, at most half full (measured at 100,000 tenants:
// about 55 bytes a tenant, against 85 for a Go map from name to entry).
// Not safe for concurrent use (the tracker locks).
type tenantIndex struct {
	seed     maphash.Seed
	slots    []uint32 // linear probing; 0 empty, else entry number + 1
	pages    [][]entry
	n        int
	names    nameArena
	overflow map[uint32]string // names of entries past a full arena (see nameArena)
}

// entryPage is how many entries a page holds.
const entryPage = 1024

func newTenantIndex() tenantIndex { return tenantIndex{seed: maphash.MakeSeed()} }

// entry returns entry number i.
func (x *tenantIndex) entry(i uint32) *entry { return &x.pages[i/entryPage][i%entryPage] }

// name returns entry i's tenant.
func (x *tenantIndex) name(i uint32) string {
	e := x.entry(i)
	if e.name == noName {
		return x.overflow[i]
	}
	return x.names.get(e.name)
}

// find returns the number of tenant's entry.
func (x *tenantIndex) find(tenant string) (uint32, bool) {
	if len(x.slots) == 0 {
		return 0, false
	}
	mask := uint64(len(x.slots) - 1)
	for i := maphash.String(x.seed, tenant) & mask; ; i = (i + 1) & mask {
		s := x.slots[i]
		if s == 0 {
			return 0, false
		}
		if x.name(s-1) == tenant {
			return s - 1, true
		}
	}
}

// add appends e as the entry of tenant (not in the index yet) and returns its number.
func (x *tenantIndex) add(tenant string, e entry) uint32 {
	if (x.n+1)*2 > len(x.slots) {
		x.grow()
	}
	i := uint32(x.n)
	if x.n%entryPage == 0 {
		x.pages = append(x.pages, make([]entry, entryPage))
	}
	var ok bool
	if e.name, ok = x.names.add(tenant); !ok {
		e.name = noName
		if x.overflow == nil {
			x.overflow = map[uint32]string{}
		}
		x.overflow[i] = tenant
	}
	*x.entry(i) = e
	x.n++
	x.place(i, tenant)
	return i
}

func (x *tenantIndex) place(i uint32, tenant string) {
	mask := uint64(len(x.slots) - 1)
	j := maphash.String(x.seed, tenant) & mask
	for x.slots[j] != 0 {
		j = (j + 1) & mask
	}
	x.slots[j] = i + 1
}

func (x *tenantIndex) grow() {
	x.slots = make([]uint32, max(2*len(x.slots), 64))
	for i := range x.n {
		x.place(uint32(i), x.name(uint32(i)))
	}
}

// nameArena stores strings one after the other (a uvarint length, then the
// bytes) in chunks of nameChunk bytes, a string found by its offset. A long
// string has a chunk of its own. Offsets are 32 bits: an arena holds up to
// 65,536 chunks (4 GiB of tenant names), then add says no.
type nameArena struct {
	chunks [][]byte
}

const (
	nameChunk = 64 << 10
	noName    = ^uint32(0) // an entry whose name is in tenantIndex.overflow
)

func (a *nameArena) add(s string) (uint32, bool) {
	need := binary.MaxVarintLen64 + len(s)
	last := len(a.chunks) - 1
	if last < 0 || cap(a.chunks[last])-len(a.chunks[last]) < need {
		if len(a.chunks) >= 1<<16-1 {
			return 0, false
		}
		size := nameChunk
		if need > nameChunk/4 {
			size = need // its own chunk
		}
		a.chunks = append(a.chunks, make([]byte, 0, size))
		last++
	}
	c := a.chunks[last]
	off := len(c)
	c = binary.AppendUvarint(c, uint64(len(s)))
	a.chunks[last] = append(c, s...)
	return uint32(last)<<16 | uint32(off), true
}

// get returns the string at ref. It shares the arena's bytes, which are
// never written again.
func (a *nameArena) get(ref uint32) string {
	c := a.chunks[ref>>16][ref&(1<<16-1):]
	n, k := binary.Uvarint(c)
	if n == 0 {
		return ""
	}
	return unsafe.String(&c[k], int(n))
}
