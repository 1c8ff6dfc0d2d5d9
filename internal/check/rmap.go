package check

import (
	"fmt"
	"sort"

	"xfskit/ondisk"
)

// rmapKey is a reverse mapping reduced to what must match.
type rmapKey struct {
	start, length uint32
	owner         uint64
	offset        uint64 // file offset for inode data/attr; 0 otherwise
	attr, bmbt    bool
	unwritten     bool
}

func (k rmapKey) String() string {
	owner := ondisk.RmapOwnerName(k.owner)
	if owner == "" {
		owner = fmt.Sprintf("inode %d", k.owner)
		switch {
		case k.bmbt:
			owner += " bmbt"
		case k.attr:
			owner += fmt.Sprintf(" attr offset %d", k.offset)
		default:
			owner += fmt.Sprintf(" offset %d", k.offset)
		}
		if k.unwritten {
			owner += " unwritten"
		}
	}
	return fmt.Sprintf("%d+%d %s", k.start, k.length, owner)
}

// rmapOf maps a claim to the reverse mapping the kernel keeps for it.
func rmapOf(u use) (rmapKey, bool) {
	k := rmapKey{start: u.start, length: u.length}
	switch u.kind {
	case ownFree:
		return k, false
	case ownHeaders:
		k.owner = ondisk.RmapOwnFS
	case ownFreelist, ownBnobt, ownCntbt, ownRmapbt:
		k.owner = ondisk.RmapOwnAG
	case ownInobt, ownFinobt:
		k.owner = ondisk.RmapOwnInobt
	case ownInodes:
		k.owner = ondisk.RmapOwnInodes
	case ownRefcbt:
		k.owner = ondisk.RmapOwnRefc
	case ownLog:
		k.owner = ondisk.RmapOwnLog
	case ownData:
		k.owner, k.offset, k.unwritten = u.ino, u.offset, u.unwritten
	case ownAttr:
		k.owner, k.offset, k.attr = u.ino, u.offset, true
	case ownBmbt:
		k.owner, k.bmbt, k.attr = u.ino, true, u.attrFork
	}
	return k, true
}

// normalizeRmaps sorts mappings and merges neighbours that the kernel would
// hold as one record: same owner and flags, adjacent blocks and (for file
// data) adjacent offsets.
func normalizeRmaps(ks []rmapKey) []rmapKey {
	sort.Slice(ks, func(i, j int) bool {
		a, b := ks[i], ks[j]
		if a.owner != b.owner {
			return a.owner < b.owner
		}
		if a.attr != b.attr {
			return !a.attr
		}
		if a.bmbt != b.bmbt {
			return !a.bmbt
		}
		return a.start < b.start
	})
	var out []rmapKey
	for _, k := range ks {
		if n := len(out); n > 0 {
			p := &out[n-1]
			fileOff := p.owner < ondisk.RmapOwnMin && !p.bmbt
			if p.owner == k.owner && p.attr == k.attr && p.bmbt == k.bmbt && p.unwritten == k.unwritten &&
				p.start+p.length == k.start && (!fileOff || p.offset+uint64(p.length) == k.offset) {
				p.length += k.length
				continue
			}
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.start != b.start {
			return a.start < b.start
		}
		if a.owner != b.owner {
			return a.owner < b.owner
		}
		return a.offset < b.offset
	})
	return out
}

// compareRmaps checks the rmapbt of an AG against the claims every other
// structure made on its blocks.
func (c *checker) compareRmaps(agno uint32) {
	var want, have []rmapKey
	for _, u := range c.space[agno].uses {
		if k, ok := rmapOf(u); ok {
			want = append(want, k)
		}
	}
	for _, r := range c.ags[agno].rmaps {
		k := rmapKey{start: r.StartBlock, length: r.BlockCount, owner: r.Owner, attr: r.AttrFork, bmbt: r.BmbtBlock, unwritten: r.Unwritten}
		if r.Owner < ondisk.RmapOwnMin && !r.BmbtBlock {
			k.offset = r.Offset
		}
		have = append(have, k)
	}
	want, have = normalizeRmaps(want), normalizeRmaps(have)
	i, j, n := 0, 0, 0
	less := func(a, b rmapKey) bool {
		if a.start != b.start {
			return a.start < b.start
		}
		if a.owner != b.owner {
			return a.owner < b.owner
		}
		return a.offset < b.offset
	}
	report := func(format string, k rmapKey) {
		if n < 100 {
			c.r.agf(agno, "rmapbt", int64(c.sb.AGToFSB(agno, k.start)), format, k)
		}
		n++
	}
	for i < len(want) || j < len(have) {
		switch {
		case j >= len(have) || i < len(want) && less(want[i], have[j]):
			report("no reverse mapping for %v", want[i])
			i++
		case i >= len(want) || less(have[j], want[i]):
			report("reverse mapping %v matches nothing on disk", have[j])
			j++
		default:
			if want[i] != have[j] {
				report("reverse mapping differs from what is on disk: %v", have[j])
			}
			i++
			j++
		}
	}
	if n > 100 {
		c.r.agf(agno, "rmapbt", -1, "... %d more reverse mapping differences", n-100)
	}
}
