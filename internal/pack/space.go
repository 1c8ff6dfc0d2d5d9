package pack

import (
	"fmt"
	"slices"

	"xfskit/ondisk"
)

// Space is the free space of a filesystem under construction, one sorted
// extent list per AG, and an Allocator over it. Allocation is first fit
// from the start of the hinted AG, preferring one extent that holds the
// whole request, so that a tree written in order lands in order,
// contiguously per file, without leaving holes behind.
type Space struct {
	sb  *ondisk.Superblock
	ags [][]AGExtent
}

// NewSpace returns a Space with no free blocks; add them with SetFree.
func NewSpace(sb *ondisk.Superblock) *Space {
	return &Space{sb: sb, ags: make([][]AGExtent, sb.AGCount)}
}

// SetFree replaces the free extents of AG agno (sorted, disjoint).
func (s *Space) SetFree(agno uint32, free []AGExtent) error {
	for i, e := range free {
		if e.Len == 0 || uint64(e.Bno)+uint64(e.Len) > uint64(s.sb.AGLength(agno)) {
			return fmt.Errorf("AG %d: free extent %d+%d outside the AG", agno, e.Bno, e.Len)
		}
		if i > 0 && free[i-1].Bno+free[i-1].Len > e.Bno {
			return fmt.Errorf("AG %d: free extents %d+%d and %d+%d overlap or are unsorted", agno, free[i-1].Bno, free[i-1].Len, e.Bno, e.Len)
		}
	}
	s.ags[agno] = slices.Clone(free)
	return nil
}

// Free returns the free extents of AG agno.
func (s *Space) Free(agno uint32) []AGExtent { return slices.Clone(s.ags[agno]) }

// FreeBlocks is the number of free blocks in AG agno.
func (s *Space) FreeBlocks(agno uint32) uint64 {
	var n uint64
	for _, e := range s.ags[agno] {
		n += uint64(e.Len)
	}
	return n
}

// TotalFree is the number of free blocks in the filesystem.
func (s *Space) TotalFree() uint64 {
	var n uint64
	for a := range s.ags {
		n += s.FreeBlocks(uint32(a))
	}
	return n
}

// ErrNoSpace is wrapped by Alloc when the request cannot be met.
var ErrNoSpace = fmt.Errorf("no space left")

// Alloc implements Allocator. The AG of r.Near is tried first, then the
// following AGs in turn.
func (s *Space) Alloc(r Request) ([]Run, error) {
	if r.Len == 0 {
		return nil, nil
	}
	first, _ := s.sb.FSBToAG(r.Near)
	if first >= s.sb.AGCount {
		first = 0
	}
	n := s.sb.AGCount
	// One extent holding everything, in any AG, before splitting.
	for i := uint32(0); i < n; i++ {
		agno := (first + i) % n
		if bno, ok := s.fit(agno, r.Len, r.Align); ok {
			if err := s.take(agno, bno, uint32(r.Len)); err != nil {
				return nil, err
			}
			return []Run{{FSB: s.sb.AGToFSB(agno, bno), Len: r.Len}}, nil
		}
	}
	if r.Contig || r.Align > 1 {
		return nil, fmt.Errorf("%d contiguous blocks (alignment %d): %w", r.Len, r.Align, ErrNoSpace)
	}
	if s.TotalFree() < r.Len {
		return nil, fmt.Errorf("%d blocks, %d free: %w", r.Len, s.TotalFree(), ErrNoSpace)
	}
	var runs []Run
	need := r.Len
	for i := uint32(0); i < n && need > 0; i++ {
		agno := (first + i) % n
		for need > 0 && len(s.ags[agno]) > 0 {
			e := s.ags[agno][0]
			k := min(uint64(e.Len), need)
			if err := s.take(agno, e.Bno, uint32(k)); err != nil {
				return nil, err
			}
			runs = append(runs, Run{FSB: s.sb.AGToFSB(agno, e.Bno), Len: k})
			need -= k
		}
	}
	if need > 0 {
		return nil, fmt.Errorf("%d blocks: %w", r.Len, ErrNoSpace)
	}
	return runs, nil
}

// fit finds the first extent of AG agno holding n blocks at an aligned
// start and returns that start.
func (s *Space) fit(agno uint32, n uint64, align uint32) (uint32, bool) {
	for _, e := range s.ags[agno] {
		start := e.Bno
		if align > 1 {
			start = (start + align - 1) / align * align
		}
		if uint64(start)+n <= uint64(e.Bno)+uint64(e.Len) && start >= e.Bno {
			return start, true
		}
	}
	return 0, false
}

// take removes [bno, bno+n) from the free extent of AG agno holding it.
func (s *Space) take(agno, bno, n uint32) error {
	f := s.ags[agno]
	for i, e := range f {
		if bno < e.Bno || bno+n > e.Bno+e.Len {
			continue
		}
		var rest []AGExtent
		if bno > e.Bno {
			rest = append(rest, AGExtent{e.Bno, bno - e.Bno})
		}
		if end := bno + n; end < e.Bno+e.Len {
			rest = append(rest, AGExtent{end, e.Bno + e.Len - end})
		}
		s.ags[agno] = slices.Replace(f, i, i+1, rest...)
		return nil
	}
	return fmt.Errorf("AG %d blocks %d+%d are not free", agno, bno, n)
}

// Take marks [bno, bno+n) of AG agno used (it must be free).
func (s *Space) Take(agno, bno, n uint32) error { return s.take(agno, bno, n) }
