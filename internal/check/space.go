package check

import (
	"fmt"
	"sort"
)

// ownerKind says what a block range is used for.
type ownerKind uint8

const (
	ownFree     ownerKind = iota // in the free-space B-trees
	ownHeaders                   // sb/AGF/AGI/AGFL sectors
	ownFreelist                  // on the AGFL
	ownBnobt
	ownCntbt
	ownInobt
	ownFinobt
	ownRmapbt
	ownRefcbt
	ownInodes // inode chunks
	ownLog
	ownData        // file or directory data fork extent
	ownAttr        // attribute fork extent
	ownBmbt        // extent map B-tree block
	ownPendingFree // an unfinished extent-free intent's (Options.PendingFree)
)

var ownerNames = [...]string{"free space", "AG headers", "AGFL", "bnobt", "cntbt", "inobt", "finobt", "rmapbt", "refcountbt", "inode chunk", "log", "data", "attr fork", "bmbt", "pending free"}

func (k ownerKind) String() string {
	if int(k) < len(ownerNames) {
		return ownerNames[k]
	}
	return fmt.Sprintf("owner(%d)", k)
}

// use is one claim on a range of blocks in an AG.
type use struct {
	start, length uint32
	kind          ownerKind
	ino           uint64 // for data/attr/bmbt
	offset        uint64 // file offset in blocks, for data/attr
	unwritten     bool   // data extent is unwritten (preallocated)
	attrFork      bool   // bmbt block of the attribute fork
}

func (u use) describe() string {
	switch u.kind {
	case ownData, ownAttr, ownBmbt:
		return fmt.Sprintf("inode %d %s", u.ino, u.kind)
	}
	return u.kind.String()
}

// agSpace collects every claim on the blocks of one AG.
type agSpace struct {
	uses []use
}

func (s *agSpace) add(u use) { s.uses = append(s.uses, u) }

// sharedRange is a run of blocks claimed by `count` data extents (reflink).
type sharedRange struct {
	start, length, count uint32
}

// sweep sorts the claims and reports overlaps and unclaimed blocks of an AG
// of aglen blocks. Overlaps between data extents are allowed when reflink
// is on; they are returned as shared ranges for the refcount check.
func (s *agSpace) sweep(r *Report, agno uint32, aglen uint32, reflink bool, agToFSB func(uint32, uint32) uint64) []sharedRange {
	uses := s.uses
	sortUses(uses)
	var covered uint32 // blocks [0, covered) are claimed
	// active holds claims overlapping the current position, for overlap reports.
	var active []use
	reported := 0
	for _, u := range uses {
		if u.length == 0 {
			continue
		}
		end := uint64(u.start) + uint64(u.length)
		if end > uint64(aglen) {
			r.agf(agno, u.kind.String(), int64(agToFSB(agno, u.start)), "%s claims blocks %d..%d beyond the end of the AG (%d blocks)", u.describe(), u.start, end-1, aglen)
			continue
		}
		if u.start > covered {
			r.agf(agno, "space map", int64(agToFSB(agno, covered)), "blocks %d..%d (%d) are neither free nor in use (leaked)", covered, u.start-1, u.start-covered)
		}
		// Drop active claims that end before this one starts.
		keep := active[:0]
		for _, a := range active {
			if a.start+a.length > u.start {
				keep = append(keep, a)
			}
		}
		active = keep
		for _, a := range active {
			lo := u.start
			hi := min(a.start+a.length, u.start+u.length)
			if reflink && a.kind == ownData && u.kind == ownData {
				continue // shared extents; counted by dataRefcounts
			}
			if reported < 1000 {
				r.agf(agno, "space map", int64(agToFSB(agno, lo)), "blocks %d..%d claimed by both %s and %s", lo, hi-1, a.describe(), u.describe())
			}
			reported++
		}
		active = append(active, u)
		if uint32(end) > covered {
			covered = uint32(end)
		}
	}
	if covered < aglen {
		r.agf(agno, "space map", int64(agToFSB(agno, covered)), "blocks %d..%d (%d) are neither free nor in use (leaked)", covered, aglen-1, aglen-covered)
	}
	if !reflink {
		return nil
	}
	return dataRefcounts(uses)
}

// dataRefcounts returns the ranges of blocks claimed by two or more data
// extents, with how many claim each block: what the refcount B-tree must hold.
func dataRefcounts(uses []use) []sharedRange {
	type ev struct {
		at    uint32
		delta int
	}
	var evs []ev
	for _, u := range uses {
		if u.kind == ownData && u.length > 0 {
			evs = append(evs, ev{u.start, 1}, ev{u.start + u.length, -1})
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	var out []sharedRange
	depth := 0
	var prev uint32
	for i := 0; i < len(evs); {
		at := evs[i].at
		if depth > 1 && at > prev {
			c := uint32(depth)
			if n := len(out); n > 0 && out[n-1].start+out[n-1].length == prev && out[n-1].count == c {
				out[n-1].length += at - prev
			} else {
				out = append(out, sharedRange{prev, at - prev, c})
			}
		}
		for i < len(evs) && evs[i].at == at {
			depth += evs[i].delta
			i++
		}
		prev = at
	}
	return out
}

func sortUses(uses []use) {
	sort.Slice(uses, func(i, j int) bool {
		if uses[i].start != uses[j].start {
			return uses[i].start < uses[j].start
		}
		return uses[i].length > uses[j].length
	})
}
