package xfs

import (
	"bytes"
	"errors"
	"fmt"

	"xfskit/ondisk"
)

// BtreeBlock is one verified block of a short-form AG B-tree, as a walk
// hands it to its visitor. Raw (and every slice taken from it) is only valid
// during the visit: the walker reuses the buffer.
type BtreeBlock struct {
	AGNo   uint32
	AGBno  uint32
	Level  int    // 0 for leaves
	Parent uint32 // AG block of the parent node, NullAGBno for the root
	Header *ondisk.BtreeHeader
	Raw    []byte
	Geom   ondisk.BtreeGeometry
}

// NumRecs is the number of records (leaf) or key/pointer pairs (node).
func (b *BtreeBlock) NumRecs() int { return int(b.Header.NumRecs) }

// IsLeaf reports a leaf block.
func (b *BtreeBlock) IsLeaf() bool { return b.Level == 0 }

// Where locates the block for messages: "AG 2 block 88".
func (b *BtreeBlock) Where() string { return blockWhere(b.AGNo, b.AGBno) }

// Rec returns leaf record i, or nil if i is out of range or b is a node.
func (b *BtreeBlock) Rec(i int) []byte {
	if b.Level != 0 || i < 0 || i >= b.NumRecs() {
		return nil
	}
	return b.Geom.Rec(b.Raw, ondisk.ShortHdrSize, i)
}

// Key returns node key entry i (for the rmapbt the low and high keys
// together), or nil if out of range or b is a leaf.
func (b *BtreeBlock) Key(i int) []byte {
	if b.Level == 0 || i < 0 || i >= b.NumRecs() {
		return nil
	}
	return b.Geom.Key(b.Raw, ondisk.ShortHdrSize, i)
}

// LowKey returns the low key of node entry i (the whole key for trees
// without high keys).
func (b *BtreeBlock) LowKey(i int) []byte {
	k := b.Key(i)
	if k == nil {
		return nil
	}
	return k[:ondisk.BtreeLowKeySize(b.Geom.Magic)]
}

// HighKey returns the high key of node entry i of an overlapping tree
// (rmapbt), nil otherwise.
func (b *BtreeBlock) HighKey(i int) []byte {
	k := b.Key(i)
	if k == nil || !ondisk.BtreeOverlapping(b.Geom.Magic) {
		return nil
	}
	return k[ondisk.BtreeLowKeySize(b.Geom.Magic):]
}

// Ptr returns child pointer i of a node (an AG block number), or NullAGBno
// if out of range or b is a leaf.
func (b *BtreeBlock) Ptr(i int) uint32 {
	if b.Level == 0 || i < 0 || i >= b.NumRecs() {
		return ondisk.NullAGBno
	}
	return uint32(b.Geom.Ptr(b.Raw, ondisk.ShortHdrSize, i))
}

func blockWhere(agno, agbno uint32) string { return fmt.Sprintf("AG %d block %d", agno, agbno) }

// ErrStopWalk may be returned by a visitor to end a walk early; the walk
// then returns nil.
var ErrStopWalk = errors.New("stop walk")

// WalkAGBtree walks the short-form B-tree of AG agno rooted at AG block root
// with the given number of levels, depth first in key order, calling visit
// for every block (parents before children). Every block is verified
// (magic, CRC, UUID, self address, owner = agno, expected level), record
// and key order is checked within and across blocks, each child's low key
// must equal its parent's key (and for the rmapbt the parent's high key the
// child's highest key), sibling pointers must link each level left to right,
// and a block reached twice (a cycle or a shared block) is corruption. The
// first corruption, as a *ondisk.CorruptError naming AG and block, ends the
// walk; visit errors end it too and are returned unchanged, except
// ErrStopWalk, which ends it with nil.
func (f *FS) WalkAGBtree(agno, root uint32, levels int, geom ondisk.BtreeGeometry, visit func(b *BtreeBlock) error) error {
	return f.WalkAGBtreeReport(agno, root, levels, geom, visit, nil)
}

// WalkAGBtreeReport is WalkAGBtree for checkers: when report is not nil,
// every corruption is passed to it and the walk goes on, skipping the
// subtree under a block that cannot be trusted; report returning an error
// ends the walk with that error. I/O errors always end the walk.
func (f *FS) WalkAGBtreeReport(agno, root uint32, levels int, geom ondisk.BtreeGeometry,
	visit func(b *BtreeBlock) error, report func(err error) error) error {
	w := &btreeWalk{f: f, agno: agno, geom: geom, visit: visit, report: report,
		name: ondisk.BtreeName(geom.Magic), seen: map[uint32]struct{}{}}
	err := w.run(root, levels)
	if errors.Is(err, ErrStopWalk) {
		return nil
	}
	return err
}

// WalkAGRecords calls fn for every leaf record of the tree in key order, with
// the same verification as WalkAGBtree. rec is only valid during the call.
func (f *FS) WalkAGRecords(agno, root uint32, levels int, geom ondisk.BtreeGeometry, fn func(rec []byte) error) error {
	return f.WalkAGBtree(agno, root, levels, geom, func(b *BtreeBlock) error {
		for i := 0; b.IsLeaf() && i < b.NumRecs(); i++ {
			if err := fn(b.Rec(i)); err != nil {
				return err
			}
		}
		return nil
	})
}

// AGBtreeRoot returns the root block and height of the AG B-tree with the
// given magic, from the (verified) AGF or AGI of AG agno.
func (f *FS) AGBtreeRoot(agno uint32, magic uint32) (root uint32, levels int, err error) {
	switch magic {
	case ondisk.BnobtMagic, ondisk.CntbtMagic, ondisk.RmapbtMagic, ondisk.RefcbtMagic:
		if magic == ondisk.RmapbtMagic && !f.SB.HasRmapbt() || magic == ondisk.RefcbtMagic && !f.SB.HasReflink() {
			return 0, 0, fmt.Errorf("%s: AG %d has no %s: feature not enabled", f.name, agno, ondisk.BtreeName(magic))
		}
		agf, err := f.AGF(agno)
		if err != nil {
			return 0, 0, err
		}
		switch magic {
		case ondisk.BnobtMagic:
			return agf.BnoRoot, int(agf.BnoLevel), nil
		case ondisk.CntbtMagic:
			return agf.CntRoot, int(agf.CntLevel), nil
		case ondisk.RmapbtMagic:
			return agf.RmapRoot, int(agf.RmapLevel), nil
		default:
			return agf.RefcountRoot, int(agf.RefcountLevel), nil
		}
	case ondisk.InobtMagic, ondisk.FinobtMagic:
		if magic == ondisk.FinobtMagic && !f.SB.HasFinobt() {
			return 0, 0, fmt.Errorf("%s: AG %d has no finobt: feature not enabled", f.name, agno)
		}
		agi, err := f.AGI(agno)
		if err != nil {
			return 0, 0, err
		}
		if magic == ondisk.InobtMagic {
			return agi.Root, int(agi.Level), nil
		}
		return agi.FreeRoot, int(agi.FreeLevel), nil
	}
	return 0, 0, fmt.Errorf("%s is not an AG B-tree", ondisk.BtreeName(magic))
}

// levelState tracks the last block seen at one level, for sibling and
// cross-block order checks.
type levelState struct {
	started bool   // a block at this level has been seen
	unknown bool   // a block here was skipped: its successor's links cannot be checked
	agbno   uint32 // last block
	right   uint64 // its right sibling pointer
	last    []byte // its last record (leaf) or low key (node)
}

type btreeWalk struct {
	f      *FS
	agno   uint32
	geom   ondisk.BtreeGeometry
	name   string
	visit  func(*BtreeBlock) error
	report func(error) error
	seen   map[uint32]struct{}
	lev    []levelState
	bufs   [][]byte
	keyLen int
}

// corrupt reports a finding: with a reporter the walk continues (unless it
// says stop), without one the finding ends the walk.
func (w *btreeWalk) corrupt(err error) error {
	if w.report == nil {
		return err
	}
	return w.report(err)
}

func (w *btreeWalk) errAt(agbno uint32, field, format string, a ...any) error {
	return ondisk.Corrupt(w.name+" block", blockWhere(w.agno, agbno), field, format, a...)
}

func (w *btreeWalk) run(root uint32, levels int) error {
	sb := w.f.SB
	w.keyLen = ondisk.BtreeLowKeySize(w.geom.Magic)
	if w.keyLen == 0 || ondisk.IsLongBtree(w.geom.Magic) {
		return fmt.Errorf("%s is not a short-form AG B-tree", w.name)
	}
	if err := w.f.checkAGNo(w.agno, w.name); err != nil {
		return err
	}
	if max := ondisk.BtreeMaxLevels(sb, w.geom.Magic); levels < 1 || levels > max {
		return w.corrupt(ondisk.Corrupt(w.name, fmt.Sprintf("AG %d", w.agno), "levels", "%d levels, valid range 1..%d", levels, max))
	}
	w.lev = make([]levelState, levels)
	w.bufs = make([][]byte, levels)
	if err := w.block(root, levels-1, ondisk.NullAGBno, -1, nil, nil); err != nil {
		return err
	}
	for l := range w.lev {
		st := &w.lev[l]
		if st.started && !st.unknown && st.right != ondisk.NullLongPtr {
			if err := w.corrupt(w.errAt(st.agbno, "rightsib", "last block of level %d has right sibling %d", l, st.right)); err != nil {
				return err
			}
		}
	}
	return nil
}

// skip marks this level and those below as not checkable across the next
// block boundary, because a subtree was not walked.
func (w *btreeWalk) skip(level int, agbno uint32) {
	for l := level; l >= 0; l-- {
		w.lev[l].unknown = true
		w.lev[l].last = nil
	}
	w.lev[level].started = true
	w.lev[level].agbno = agbno
}

// block walks the subtree at agbno, expected at level, reached through
// entry idx of parent whose low (and high) key for it are pLo and pHi.
func (w *btreeWalk) block(agbno uint32, level int, parent uint32, idx int, pLo, pHi []byte) error {
	sb := w.f.SB
	length := sb.AGLength(w.agno)
	if agbno <= ondisk.AGFLBlock(sb) || agbno >= length {
		var err error
		if parent == ondisk.NullAGBno {
			err = ondisk.Corrupt(w.name, fmt.Sprintf("AG %d", w.agno), "root", "root block %d outside AG blocks %d..%d", agbno, ondisk.AGFLBlock(sb)+1, length-1)
		} else {
			err = w.errAt(parent, fmt.Sprintf("ptr[%d]", idx), "child block %d outside AG blocks %d..%d", agbno, ondisk.AGFLBlock(sb)+1, length-1)
		}
		w.skip(level, agbno)
		return w.corrupt(err)
	}
	if _, dup := w.seen[agbno]; dup {
		w.skip(level, agbno)
		return w.corrupt(w.errAt(parent, fmt.Sprintf("ptr[%d]", idx), "child block %d is already in the tree (cycle or shared block)", agbno))
	}
	w.seen[agbno] = struct{}{}

	if w.bufs[level] == nil {
		w.bufs[level] = make([]byte, sb.BlockSize)
	}
	buf := w.bufs[level]
	daddr := sb.AGBToDaddr(w.agno, agbno)
	if err := w.f.ReadDaddrInto(daddr, buf); err != nil {
		return fmt.Errorf("%s %s: %w", w.name, blockWhere(w.agno, agbno), err)
	}
	h, err := ondisk.VerifyBtreeBlock(buf, w.geom.Magic, sb.MetaUUIDOrUUID(), daddr, uint64(w.agno), level, blockWhere(w.agno, agbno))
	if err != nil {
		w.skip(level, agbno)
		return w.corrupt(err)
	}
	b := &BtreeBlock{AGNo: w.agno, AGBno: agbno, Level: level, Parent: parent, Header: h, Raw: buf, Geom: w.geom}
	n := b.NumRecs()
	if max := w.geom.MaxRecs(int(sb.BlockSize), level == 0); n > max {
		w.skip(level, agbno)
		return w.corrupt(w.errAt(agbno, "numrecs", "%d entries, a level %d block holds at most %d", n, level, max))
	}
	if n == 0 && (level > 0 || parent != ondisk.NullAGBno) {
		w.skip(level, agbno)
		return w.corrupt(w.errAt(agbno, "numrecs", "empty %s block", map[bool]string{true: "leaf", false: "node"}[level == 0]))
	}
	if err := w.checkSiblings(b); err != nil {
		return err
	}
	if err := w.checkOrder(b, pLo, pHi); err != nil {
		return err
	}
	if w.visit != nil {
		if err := w.visit(b); err != nil {
			return err
		}
	}
	if level == 0 {
		return nil
	}
	// Copy the keys: the children reuse lower-level buffers, not this one,
	// but the visitor may not rely on that and neither do we.
	entries := make([]struct {
		ptr    uint32
		lo, hi []byte
	}, n)
	for i := 0; i < n; i++ {
		entries[i].ptr = b.Ptr(i)
		entries[i].lo = bytes.Clone(b.LowKey(i))
		entries[i].hi = bytes.Clone(b.HighKey(i))
	}
	for i, e := range entries {
		if err := w.block(e.ptr, level-1, agbno, i, e.lo, e.hi); err != nil {
			return err
		}
	}
	return nil
}

// checkSiblings verifies the left/right links of b against the previous
// block at its level and records b as the new last block there.
func (w *btreeWalk) checkSiblings(b *BtreeBlock) error {
	st := &w.lev[b.Level]
	h := b.Header
	var errs []error
	switch {
	case b.Parent == ondisk.NullAGBno:
		if h.LeftSib != ondisk.NullLongPtr {
			errs = append(errs, w.errAt(b.AGBno, "leftsib", "root block has a left sibling %d", h.LeftSib))
		}
		if h.RightSib != ondisk.NullLongPtr {
			errs = append(errs, w.errAt(b.AGBno, "rightsib", "root block has a right sibling %d", h.RightSib))
		}
	case !st.started:
		if h.LeftSib != ondisk.NullLongPtr {
			errs = append(errs, w.errAt(b.AGBno, "leftsib", "first block of level %d has left sibling %d", b.Level, h.LeftSib))
		}
	case st.unknown:
		// The previous block was not readable; its links cannot be compared.
	default:
		if st.right != uint64(b.AGBno) {
			errs = append(errs, w.errAt(st.agbno, "rightsib", "right sibling %s, but the next block at level %d is %d", sibName(st.right), b.Level, b.AGBno))
		}
		if h.LeftSib != uint64(st.agbno) {
			errs = append(errs, w.errAt(b.AGBno, "leftsib", "left sibling %s, but the previous block at level %d is %d", sibName(h.LeftSib), b.Level, st.agbno))
		}
	}
	st.started, st.unknown, st.agbno, st.right = true, false, b.AGBno, h.RightSib
	for _, e := range errs {
		if err := w.corrupt(e); err != nil {
			return err
		}
	}
	return nil
}

func sibName(p uint64) string {
	if p == ondisk.NullLongPtr {
		return "NULL"
	}
	return fmt.Sprint(p)
}

// checkOrder verifies entry order inside b and against the previous block
// at its level, and b's keys against the parent's entry for it.
func (w *btreeWalk) checkOrder(b *BtreeBlock, pLo, pHi []byte) error {
	magic := w.geom.Magic
	st := &w.lev[b.Level]
	n := b.NumRecs()
	entry := func(i int) []byte {
		if b.IsLeaf() {
			return b.Rec(i)
		}
		return b.LowKey(i)
	}
	inOrder := func(a, c []byte) bool {
		if b.IsLeaf() {
			return ondisk.BtreeRecsInOrder(magic, a, c)
		}
		return ondisk.BtreeKeysInOrder(magic, a, c)
	}
	what := map[bool]string{true: "rec", false: "key"}[b.IsLeaf()]
	prev := st.last
	var errs []error
	for i := 0; i < n; i++ {
		cur := entry(i)
		if prev != nil && !inOrder(prev, cur) {
			field := fmt.Sprintf("%ss[%d]", what, i)
			if i == 0 {
				errs = append(errs, w.errAt(b.AGBno, field, "first %s is out of order with the last of the previous block at level %d", what, b.Level))
			} else {
				errs = append(errs, w.errAt(b.AGBno, field, "%s %d is out of order with %s %d", what, i, what, i-1))
			}
		}
		prev = cur
	}
	if n > 0 {
		st.last = append(st.last[:0], entry(n-1)...)
	}
	if pLo != nil && n > 0 {
		lo := make([]byte, w.keyLen)
		if b.IsLeaf() {
			if err := ondisk.BtreeRecKey(magic, b.Rec(0), lo, false); err != nil {
				return err
			}
		} else {
			copy(lo, b.LowKey(0))
		}
		if ondisk.CompareBtreeKeys(magic, lo, pLo) != 0 || (magic != ondisk.RmapbtMagic && !bytes.Equal(lo, pLo)) {
			errs = append(errs, w.errAt(b.AGBno, "keys[0]", "low key %x differs from the parent's key %x (parent block %d)", lo, pLo, b.Parent))
		}
	}
	if pHi != nil && n > 0 {
		hi := w.highKey(b)
		if ondisk.CompareBtreeKeys(magic, hi, pHi) != 0 {
			errs = append(errs, w.errAt(b.AGBno, "keys", "highest key %x differs from the parent's high key %x (parent block %d)", hi, pHi, b.Parent))
		}
	}
	for _, e := range errs {
		if err := w.corrupt(e); err != nil {
			return err
		}
	}
	return nil
}

// highKey is the largest high key of an overlapping-tree block.
func (w *btreeWalk) highKey(b *BtreeBlock) []byte {
	magic := w.geom.Magic
	best := make([]byte, w.keyLen)
	cur := make([]byte, w.keyLen)
	for i := 0; i < b.NumRecs(); i++ {
		if b.IsLeaf() {
			if ondisk.BtreeRecKey(magic, b.Rec(i), cur, true) != nil {
				continue
			}
		} else {
			copy(cur, b.HighKey(i))
		}
		if i == 0 || ondisk.CompareBtreeKeys(magic, cur, best) > 0 {
			copy(best, cur)
		}
	}
	return best
}
