package xfs

import (
	"errors"
	"fmt"
	"iter"

	"xfskit/ondisk"
)

// Extents returns the whole extent map of a fork in file-offset order.
// Local and device forks have no extents. For huge maps prefer
// WalkExtents or ExtentSeq, which hold one tree path at a time.
func (f *FS) Extents(ip *Inode, attrFork bool) ([]ondisk.Extent, error) {
	n := ip.ForkNextents(attrFork)
	out := make([]ondisk.Extent, 0, min(n, 1<<16))
	err := f.WalkExtents(ip, attrFork, func(e ondisk.Extent) error {
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ExtentSeq iterates a fork's extents with bounded memory. A walk error
// is yielded once, with a zero extent, and ends the sequence.
func (f *FS) ExtentSeq(ip *Inode, attrFork bool) iter.Seq2[ondisk.Extent, error] {
	return func(yield func(ondisk.Extent, error) bool) {
		err := f.WalkExtents(ip, attrFork, func(e ondisk.Extent) error {
			if !yield(e, nil) {
				return errStopWalk
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStopWalk) {
			yield(ondisk.Extent{}, err)
		}
	}
}

var errStopWalk = errors.New("walk stopped")

// WalkExtents calls fn for each extent of a fork in file-offset order,
// verifying as it goes: every record in range and not overlapping its
// predecessor, every bmbt block's magic, CRC, UUID, self address, owner,
// level and sibling links, keys matching their children, no block visited
// twice, and the total matching the inode's extent count. An error from fn
// stops the walk and is returned as is.
func (f *FS) WalkExtents(ip *Inode, attrFork bool, fn func(ondisk.Extent) error) error {
	return f.WalkForkBlocks(ip, attrFork, fn, nil)
}

// WalkForkBlocks is WalkExtents that also calls blockFn (if not nil) with
// every bmbt block of the fork, before its records.
func (f *FS) WalkForkBlocks(ip *Inode, attrFork bool, fn func(ondisk.Extent) error, blockFn func(fsb uint64)) error {
	w := &extentWalker{fs: f, ip: ip, attr: attrFork, fn: fn, blockFn: blockFn}
	w.fork = "data fork"
	if attrFork {
		w.fork = "attr fork"
	}
	w.rt = !attrFork && ip.Flags&ondisk.DiflagRealtime != 0
	fork := ip.Fork(attrFork)
	if attrFork && ip.ForkOff == 0 {
		return nil
	}
	want := ip.ForkNextents(attrFork)
	switch ip.ForkFormat(attrFork) {
	case ondisk.FmtDev, ondisk.FmtLocal:
		return nil
	case ondisk.FmtExtents:
		if want > uint64(len(fork)/ondisk.BmbtRecSize) {
			return w.corrupt("nextents", "%d extents do not fit the %d-byte fork", want, len(fork))
		}
		for i := uint64(0); i < want; i++ {
			e, _ := ondisk.DecodeExtent(fork[i*ondisk.BmbtRecSize:])
			if err := w.record(e); err != nil {
				return err
			}
		}
	case ondisk.FmtBtree:
		if err := w.walkBtree(fork); err != nil {
			return err
		}
	default:
		return w.corrupt("format", "unknown fork format %d", ip.ForkFormat(attrFork))
	}
	if w.count != want {
		return w.corrupt("nextents", "inode records %d extents, the map holds %d", want, w.count)
	}
	return nil
}

type extentWalker struct {
	fs   *FS
	ip   *Inode
	attr bool
	rt   bool
	fork string
	fn   func(ondisk.Extent) error
	// blockFn, when set, is told of every bmbt block visited (checkers
	// account for them).
	blockFn func(fsb uint64)

	count   uint64
	prevEnd uint64 // file block after the previous extent
	// per-level sibling tracking: the last block seen at each level
	lastBlock []uint64
	lastRight []uint64
	visited   map[uint64]struct{}
}

func (w *extentWalker) corrupt(field, format string, a ...any) error {
	return ondisk.Corrupt(w.fork, w.loc(), field, format, a...)
}

// loc names the inode for messages; built only when there is one to make.
func (w *extentWalker) loc() string { return fmt.Sprintf("inode %d", w.ip.Ino) }

// record checks one extent against the filesystem and its predecessor,
// then hands it to fn.
func (w *extentWalker) record(e ondisk.Extent) error {
	idx := w.count
	if w.rt {
		if e.Length == 0 || e.StartBlock+e.Length > w.fs.SB.RBlocks || e.StartBlock+e.Length < e.StartBlock {
			return w.corrupt("", "extent %d %v lies outside the realtime device", idx, e)
		}
	} else if p := w.fs.SB.ExtentProblem(e); p != "" {
		return w.corrupt("", "extent %d %v: %s", idx, e, p)
	}
	if idx > 0 && e.Offset < w.prevEnd {
		return w.corrupt("", "extent %d %v overlaps or precedes extent %d (ends at file block %d)", idx, e, idx-1, w.prevEnd)
	}
	w.prevEnd = e.End()
	w.count++
	return w.fn(e)
}

func (w *extentWalker) walkBtree(fork []byte) error {
	sb := w.fs.SB
	root, err := ondisk.DecodeBmdr(fork, w.loc()+" "+w.fork)
	if err != nil {
		return err
	}
	maxLevels := ondisk.BmbtMaxLevels(int(sb.BlockSize), len(fork), w.ip.MaxNextents(w.attr))
	if int(root.Level)+1 > maxLevels {
		return w.corrupt("level", "bmbt root at level %d, at most %d levels possible", root.Level, maxLevels)
	}
	if w.ip.ForkNextents(w.attr) <= uint64(len(fork)/ondisk.BmbtRecSize) {
		return w.corrupt("format", "btree format with %d extents, which fit in the fork", w.ip.ForkNextents(w.attr))
	}
	w.lastBlock = make([]uint64, root.Level)
	w.lastRight = make([]uint64, root.Level)
	for i := range w.lastBlock {
		w.lastBlock[i] = ondisk.NullFSB
		w.lastRight[i] = ondisk.NullFSB
	}
	w.visited = make(map[uint64]struct{})
	for i := range root.Keys {
		if i > 0 && root.Keys[i] <= root.Keys[i-1] {
			return w.corrupt("", "bmbt root key %d (%d) not above key %d (%d)", i, root.Keys[i], i-1, root.Keys[i-1])
		}
		if err := w.visit(root.Ptrs[i], int(root.Level)-1, root.Keys[i]); err != nil {
			return err
		}
	}
	// The rightmost block of every level ends its sibling chain.
	for lvl, r := range w.lastRight {
		if r != ondisk.NullFSB {
			return w.corrupt("", "last bmbt block %d at level %d has right sibling %d", w.lastBlock[lvl], lvl, r)
		}
	}
	return nil
}

// visit walks the subtree at fsb, whose parent key says its first file
// offset is key.
func (w *extentWalker) visit(fsb uint64, level int, key uint64) error {
	sb := w.fs.SB
	// FSBToAG keeps 32 bits of the AG number, so check the high bits too.
	if fsb>>sb.AGBlkLog >= uint64(sb.AGCount) || !sb.ValidFSB(fsb) {
		return w.corrupt("", "bmbt pointer %d at level %d is outside the filesystem", fsb, level)
	}
	if _, dup := w.visited[fsb]; dup {
		return w.corrupt("", "bmbt block %d reached twice (cycle or shared block)", fsb)
	}
	w.visited[fsb] = struct{}{}
	if w.blockFn != nil {
		w.blockFn(fsb)
	}
	daddr := sb.FSBToDaddr(fsb)
	buf, err := w.fs.ReadFSB(fsb, 1)
	if err != nil {
		return fmt.Errorf("%s: %s: bmbt block %d: %w", w.loc(), w.fork, fsb, err)
	}
	where := fmt.Sprintf("%s %s block %d (daddr %d)", w.loc(), w.fork, fsb, daddr)
	h, err := ondisk.VerifyBtreeBlock(buf, ondisk.BmbtMagic, sb.MetaUUIDOrUUID(), daddr, w.ip.Ino, level, where)
	if err != nil {
		return err
	}
	w.fs.noteLSN(w.ip.Ino, "bmbt block", daddr, h.LSN)
	c := func(f string, a ...any) error { return ondisk.Corrupt("bmbt block", where, "", f, a...) }
	if h.LeftSib != w.lastBlock[level] {
		return c("left sibling %d, expected %d", int64(h.LeftSib), int64(w.lastBlock[level]))
	}
	if w.lastBlock[level] != ondisk.NullFSB && w.lastRight[level] != fsb {
		return c("previous block %d at level %d names right sibling %d", w.lastBlock[level], level, w.lastRight[level])
	}
	w.lastBlock[level], w.lastRight[level] = fsb, h.RightSib
	leaf := level == 0
	maxr := ondisk.BmbtMaxRecs(len(buf), leaf)
	if h.NumRecs == 0 || int(h.NumRecs) > maxr {
		return c("%d records, block holds 1 to %d", h.NumRecs, maxr)
	}
	g := ondisk.BmbtGeom
	if leaf {
		for i := 0; i < int(h.NumRecs); i++ {
			e, _ := ondisk.DecodeExtent(g.Rec(buf, ondisk.LongHdrSize, i))
			if i == 0 && e.Offset != key {
				return c("first extent at file block %d, parent key says %d", e.Offset, key)
			}
			if err := w.record(e); err != nil {
				return err
			}
		}
		return nil
	}
	var prev uint64
	for i := 0; i < int(h.NumRecs); i++ {
		k, _ := ondisk.DecodeBmbtKey(g.Key(buf, ondisk.LongHdrSize, i))
		if i == 0 && k != key {
			return c("first key %d, parent key says %d", k, key)
		}
		if i > 0 && k <= prev {
			return c("key %d (%d) not above key %d (%d)", i, k, i-1, prev)
		}
		prev = k
		if err := w.visit(g.Ptr(buf, ondisk.LongHdrSize, i), level-1, k); err != nil {
			return err
		}
	}
	return nil
}
