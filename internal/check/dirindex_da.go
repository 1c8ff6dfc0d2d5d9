package check

import (
	"errors"
	"fmt"
	"iter"
	"sort"

	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// maxIndexFindings bounds the findings one directory or attribute fork can
// produce: a wrecked index would otherwise repeat the same story for every
// entry.
const maxIndexFindings = 16

// idxFindings collects the findings of one inode's index check, so the
// check can run apart from the report (e.g. on a reader goroutine) and be
// reported in inode order.
type idxFindings struct {
	ino     uint64
	out     []Finding
	dropped int
}

func (f *idxFindings) full() bool { return len(f.out) >= maxIndexFindings }

// add records a finding about the block at filesystem block fsb (-1: none).
func (f *idxFindings) add(structure string, fsb int64, format string, args ...any) {
	if f.full() {
		f.dropped++
		return
	}
	f.out = append(f.out, Finding{Structure: structure, AG: -1, Inode: f.ino, Block: fsb, Message: fmt.Sprintf(format, args...)})
}

// addErr records a verifier error, keeping a CorruptError's structure.
func (f *idxFindings) addErr(fsb int64, err error) {
	if f.full() {
		f.dropped++
		return
	}
	x := Finding{Structure: "metadata", AG: -1, Inode: f.ino, Block: fsb, Message: err.Error()}
	var ce *ondisk.CorruptError
	if errors.As(err, &ce) {
		x.Structure = ce.Structure
	}
	f.out = append(f.out, x)
}

// report hands the findings to the run's report.
func (f *idxFindings) report(r *Report) {
	if f == nil {
		return
	}
	for _, x := range f.out {
		r.add(x)
	}
	if f.dropped > 0 {
		r.inof(f.ino, "index", "%d more index problems not listed", f.dropped)
	}
}

// forkBlocks resolves logical blocks of one fork through its extent map
// (sorted by offset, as the engine returns it).
type forkBlocks struct {
	ext []ondisk.Extent
}

type blockRun struct{ fsb, n uint64 }

// runs maps n logical blocks from l, or says which block is not mapped.
func (m *forkBlocks) runs(l, n uint64) ([]blockRun, error) {
	var out []blockRun
	for b := l; b < l+n; {
		i := sort.Search(len(m.ext), func(i int) bool { return m.ext[i].End() > b })
		if i == len(m.ext) || m.ext[i].Offset > b {
			return nil, fmt.Errorf("logical block %d is not mapped", b)
		}
		e := m.ext[i]
		if e.Unwritten {
			return nil, fmt.Errorf("logical block %d lies in unwritten extent %v", b, e)
		}
		k := min(e.End(), l+n) - b
		fsb := e.StartBlock + b - e.Offset
		if j := len(out); j > 0 && out[j-1].fsb+out[j-1].n == fsb {
			out[j-1].n += k
		} else {
			out = append(out, blockRun{fsb, k})
		}
		b += k
	}
	return out, nil
}

// starts yields, in order, the logical starts of the per-block units
// (directory blocks; 1 for attribute blocks) that have a block mapped in
// [lo, hi). It is lazy: a hostile map can claim millions of blocks.
func (m *forkBlocks) starts(lo, hi, per uint64) iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		var last uint64
		seen := false
		for _, e := range m.ext {
			s, end := max(e.Offset, lo), min(e.End(), hi)
			for u := s - s%per; u < end; u += per {
				if seen && u <= last {
					u = last // extents may overlap; the walk reports that
					continue
				}
				seen, last = true, u
				if !yield(u) {
					return
				}
			}
		}
	}
}

// first returns the first unit start in [lo, hi), if any.
func (m *forkBlocks) first(lo, hi, per uint64) (uint64, bool) {
	for u := range m.starts(lo, hi, per) {
		return u, true
	}
	return 0, false
}

// readLogical reads n logical blocks from l; fsb is the first filesystem
// block (for findings). A mapping problem is returned as a CorruptError
// naming what; a read failure as it came.
func (c *checker) readLogical(m *forkBlocks, l, n uint64, what, where string) (buf []byte, fsb uint64, err error) {
	rs, err := m.runs(l, n)
	if err != nil {
		return nil, 0, ondisk.Corrupt(what, where, "bmap", "%v", err)
	}
	if len(rs) == 1 {
		buf, err = c.fs.ReadFSB(rs[0].fsb, uint32(rs[0].n))
		return buf, rs[0].fsb, err
	}
	buf = make([]byte, 0, n<<c.sb.BlockLog)
	for _, r := range rs {
		b, err := c.fs.ReadFSB(r.fsb, uint32(r.n))
		if err != nil {
			return nil, 0, err
		}
		buf = append(buf, b...)
	}
	return buf, rs[0].fsb, nil
}

// daSibling is one block of a da-btree level, for the sibling link check.
type daSibling struct {
	blk, fsb   uint64
	forw, back uint32
}

// daLeafFunc verifies one leaf block of a da-btree and returns its first
// and last hash and entry count; ok false stops the walk.
type daLeafFunc func(blk uint64, buf []byte, fsb uint64) (first, last uint32, count int, ok bool)

// daWalk checks a da-btree (a directory's leaf space or an attribute fork)
// from its root: node verifiers, levels, each key equal to the last hash
// of its child, hash order across leaves, sibling links at every level,
// and no block reached twice. Work is bounded by the mapped blocks (each
// block is read at most once) and the depth by XFS_DA_NODE_MAXDEPTH.
type daWalk struct {
	c         *checker
	ip        *xfs.Inode
	f         *idxFindings
	m         *forkBlocks
	per       uint64 // filesystem blocks per da block
	leafMagic uint16
	kind      string // "dir" or "attr", for locations
	link      func(blk uint64) bool
	leaf      daLeafFunc
	// first is the root block when the caller has read it already.
	first    []byte
	firstFSB uint64

	visited  map[uint64]bool
	levels   [ondisk.DANodeMaxDepth][]daSibling
	prevLast uint32 // last hash of the previous leaf
	leaves   int
	failed   bool
	ioErr    error // a read failure: the caller aborts the run
}

func (w *daWalk) where(blk uint64) string {
	return fmt.Sprintf("%s block %d", w.kind, blk)
}

// run walks the tree rooted at root.
func (w *daWalk) run(root uint64) {
	w.visited = map[uint64]bool{}
	w.visit(root, -1, 0, -1)
	if w.failed {
		return
	}
	for lv, sibs := range w.levels {
		for i, s := range sibs {
			var wantBack, wantForw uint64
			if i > 0 {
				wantBack = sibs[i-1].blk
			}
			if i+1 < len(sibs) {
				wantForw = sibs[i+1].blk
			}
			st := ondisk.DAName(ondisk.DA3NodeMagic)
			if lv == 0 {
				st = ondisk.DAName(w.leafMagic)
			}
			if uint64(s.back) != wantBack {
				w.f.add(st, int64(s.fsb), "%s: level %d back link %d, but the block to its left is %d", w.where(s.blk), lv, s.back, wantBack)
			}
			if uint64(s.forw) != wantForw {
				w.f.add(st, int64(s.fsb), "%s: level %d forward link %d, but the block to its right is %d", w.where(s.blk), lv, s.forw, wantForw)
			}
		}
	}
}

// visit checks block blk, expected at level want (-1: the root, any
// level), and returns the last hash of its subtree.
func (w *daWalk) visit(blk uint64, want, depth int, parentFSB int64) (last uint32, ok bool) {
	const nodeSt = "da3 node block"
	if depth >= ondisk.DANodeMaxDepth {
		w.f.add(nodeSt, parentFSB, "%s: the tree is deeper than %d levels", w.where(blk), ondisk.DANodeMaxDepth)
		w.failed = true
		return 0, false
	}
	if w.visited[blk] {
		w.f.add(nodeSt, parentFSB, "%s: reached twice in the hash tree (a cycle or a shared child)", w.where(blk))
		w.failed = true
		return 0, false
	}
	root := len(w.visited) == 0
	w.visited[blk] = true
	buf, fsb := w.first, w.firstFSB
	if !root || buf == nil {
		var err error
		if buf, fsb, err = w.c.readLogical(w.m, blk, w.per, nodeSt, w.where(blk)); err != nil {
			w.fail(parentFSB, err)
			return 0, false
		}
		if w.kind == "dir" { // attribute blocks: the engine's attribute reads did
			w.c.noteBlockLSN(w.ip.Ino, fsb, buf)
		}
	}
	daddr := w.c.sb.FSBToDaddr(fsb)
	switch ondisk.DAMagic(buf) {
	case ondisk.DA3NodeMagic:
		n, err := ondisk.VerifyDA3Node(buf, w.c.sb.MetaUUIDOrUUID(), daddr, w.ip.Ino, w.where(blk))
		if err != nil {
			w.fail(int64(fsb), err)
			return 0, false
		}
		if want >= 0 && int(n.Level) != want {
			w.f.add(nodeSt, int64(fsb), "%s: level %d where its parent expects level %d", w.where(blk), n.Level, want)
			w.failed = true
			return 0, false
		}
		w.levels[n.Level] = append(w.levels[n.Level], daSibling{blk, fsb, n.Info.Forw, n.Info.Back})
		for i, e := range n.Entries {
			child := uint64(e.Before)
			if !w.link(child) {
				w.f.add(nodeSt, int64(fsb), "%s: entry %d points at block %d, outside the tree's space", w.where(blk), i, child)
				w.failed = true
				return 0, false
			}
			cl, ok := w.visit(child, int(n.Level)-1, depth+1, int64(fsb))
			if !ok {
				return 0, false
			}
			if cl != e.Hashval {
				w.f.add(nodeSt, int64(fsb), "%s: entry %d hash 0x%08x, but its child block %d ends with hash 0x%08x", w.where(blk), i, e.Hashval, child, cl)
			}
		}
		return n.Entries[len(n.Entries)-1].Hashval, true
	case w.leafMagic:
		if want > 0 {
			w.f.add(nodeSt, parentFSB, "%s: a level-%d node points at a leaf", w.where(blk), want+1)
			w.failed = true
			return 0, false
		}
		first, lastH, count, ok := w.leaf(blk, buf, fsb)
		if !ok {
			w.failed = true
			return 0, false
		}
		info, _ := ondisk.DecodeDA3BlkInfo(buf)
		w.levels[0] = append(w.levels[0], daSibling{blk, fsb, info.Forw, info.Back})
		if count == 0 {
			return w.prevLast, true
		}
		if w.leaves > 0 && first < w.prevLast {
			w.f.add(ondisk.DAName(w.leafMagic), int64(fsb), "%s: first hash 0x%08x is below the last hash 0x%08x of the leaf before it", w.where(blk), first, w.prevLast)
		}
		w.leaves++
		w.prevLast = lastH
		return lastH, true
	default:
		w.f.add(nodeSt, int64(fsb), "%s: magic 0x%04x is neither a da3 node nor a %s", w.where(blk), ondisk.DAMagic(buf), ondisk.DAName(w.leafMagic))
		w.failed = true
		return 0, false
	}
}

// fail records err (an I/O error is kept for the caller) and stops.
func (w *daWalk) fail(fsb int64, err error) {
	w.failed = true
	if isIOError(err) {
		w.ioErr = err
		return
	}
	w.f.addErr(fsb, err)
}
