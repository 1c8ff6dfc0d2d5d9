package build

import (
	"fmt"

	"xfskit/ondisk"
)

// This file computes the final metadata of a freshly made filesystem the
// way mkfs.xfs arrives at it: AG headers and B-tree roots as
// xfs_ag_init_headers writes them, the AGFL filled by
// xfs_alloc_fix_freelist, and the root inode chunk placed by the inode
// allocator. The allocator's decisions are reproduced for the states an
// empty filesystem can be in, not in general; so are the B-tree record
// moves, because libxfs leaves the bytes of deleted records behind the
// last record of a block and mkfs.xfs's images carry them.

type extent struct{ bno, len uint32 }

// leaf is a single-block B-tree (the root is a leaf in a new filesystem)
// kept as the bytes of its record area.
type leaf struct {
	recSize int
	data    []byte
	n       int
}

func newLeaf(blockSize, recSize int) *leaf {
	return &leaf{recSize: recSize, data: make([]byte, blockSize-ondisk.ShortHdrSize)}
}

func (l *leaf) rec(i int) []byte { return l.data[i*l.recSize : (i+1)*l.recSize] }

// insert shifts records i.. right and stores r at i (xfs_btree_insrec).
func (l *leaf) insert(i int, r []byte) error {
	if (l.n+1)*l.recSize > len(l.data) {
		return fmt.Errorf("B-tree root full (%d records)", l.n)
	}
	copy(l.data[(i+1)*l.recSize:(l.n+1)*l.recSize], l.data[i*l.recSize:l.n*l.recSize])
	copy(l.rec(i), r)
	l.n++
	return nil
}

// remove shifts records i+1.. left; the old last record stays behind the
// new last one, as xfs_btree_delrec leaves it.
func (l *leaf) remove(i int) {
	copy(l.data[i*l.recSize:], l.data[(i+1)*l.recSize:l.n*l.recSize])
	l.n--
}

func (l *leaf) set(i int, r []byte) { copy(l.rec(i), r) }

// agLayout is the final content of one allocation group.
type agLayout struct {
	agno     uint32
	length   uint32
	free     []extent // free extents by block number
	bno, cnt *leaf
	rmap     *leaf
	inobt    *leaf
	finobt   *leaf
	agfl     []uint32 // blocks on the free list, in list order
	freeblks uint32   // AGF counters as libxfs maintains them
	longest  uint32
	count    uint32 // allocated inodes (AGI count)
	ifree    uint32 // free inodes among them
	newino   uint32
}

// fsLayout is the final content of the whole filesystem.
type fsLayout struct {
	ags      []*agLayout
	rootIno  uint64
	rbmIno   uint64
	rsumIno  uint64
	chunkBno uint32 // AG 0 block of the root inode chunk
	chunkLen uint32
	icount   uint64
	ifree    uint64
	fdblocks uint64
}

func (g *Geometry) agLength(agno uint32) uint32 {
	if agno == g.AGCount-1 {
		return uint32(g.DBlocks - uint64(agno)*uint64(g.AGBlocks))
	}
	return g.AGBlocks
}

func (g *Geometry) logInAG(agno uint32) bool {
	return g.LogStart > 0 && uint32(g.LogStart>>g.SB.AGBlkLog) == agno
}

func (g *Geometry) logAGBno() uint32 { return uint32(g.LogStart & (1<<g.SB.AGBlkLog - 1)) }

// layout computes the final state of every AG.
func (g *Geometry) layout() (*fsLayout, error) {
	fl := &fsLayout{fdblocks: g.SB.FDBlocks}
	for agno := uint32(0); agno < g.AGCount; agno++ {
		a := &agLayout{agno: agno, length: g.agLength(agno), newino: ondisk.NullAGIno}
		bs := g.BlockSize
		a.bno, a.cnt = newLeaf(bs, ondisk.AllocRecSize), newLeaf(bs, ondisk.AllocRecSize)
		a.inobt, a.finobt = newLeaf(bs, ondisk.InobtRecSize), newLeaf(bs, ondisk.InobtRecSize)
		a.rmap = newLeaf(bs, ondisk.RmapRecSize)
		if err := g.initFreeSpace(a); err != nil {
			return nil, err
		}
		if g.Rmapbt {
			if err := g.initRmaps(a); err != nil {
				return nil, err
			}
		}
		if err := g.fillFreelist(a); err != nil {
			return nil, err
		}
		fl.ags = append(fl.ags, a)
	}
	if err := g.allocRootChunk(fl); err != nil {
		return nil, err
	}
	return fl, nil
}

func allocRec(e extent) []byte {
	b := make([]byte, ondisk.AllocRecSize)
	ondisk.AllocRec{StartBlock: e.bno, BlockCount: e.len}.Encode(b)
	return b
}

// cntLess orders extents as the by-size B-tree does.
func cntLess(a, b extent) bool { return a.len < b.len || a.len == b.len && a.bno < b.bno }

// initFreeSpace is xfs_freesp_init_recs with the AGF's initial counters.
func (g *Geometry) initFreeSpace(a *agLayout) error {
	start := g.mp.preallocBlocks
	a.freeblks = a.length - start
	a.longest = a.freeblks
	var recs []extent
	if !g.logInAG(a.agno) {
		recs = []extent{{start, a.length - start}}
	} else {
		logAGB := g.logAGBno()
		a.freeblks -= g.LogBlocks
		a.longest = a.length - logAGB - g.LogBlocks
		if logAGB != start {
			recs = append(recs, extent{start, logAGB - start}) // stripe alignment padding
		}
		recs = append(recs, extent{logAGB + g.LogBlocks, a.length - logAGB - g.LogBlocks})
	}
	if recs[len(recs)-1].len == 0 {
		// The log reaches the end of the AG. mkfs.xfs 6.1 then records no
		// free extent at all, losing the alignment padding before the
		// log while counting it in agf_freeblks, which xfs_repair
		// reports; keep the padding as free space instead.
		recs = recs[:len(recs)-1]
		if len(recs) == 0 {
			return nil
		}
		a.longest = recs[0].len
	}
	a.free = recs
	for i, e := range recs {
		if err := a.bno.insert(i, allocRec(e)); err != nil {
			return err
		}
	}
	cnt := append([]extent(nil), recs...)
	if len(cnt) == 2 && cntLess(cnt[1], cnt[0]) {
		cnt[0], cnt[1] = cnt[1], cnt[0]
	}
	for i, e := range cnt {
		if err := a.cnt.insert(i, allocRec(e)); err != nil {
			return err
		}
	}
	return nil
}

// initRmaps is xfs_rmaproot_init: the static metadata owners.
func (g *Geometry) initRmaps(a *agLayout) error {
	mp := g.mp
	recs := []ondisk.RmapRec{
		{StartBlock: 0, BlockCount: mp.bnoBlock, Owner: ondisk.RmapOwnFS},
		{StartBlock: mp.bnoBlock, BlockCount: 2, Owner: ondisk.RmapOwnAG},
		{StartBlock: mp.ibtBlock, BlockCount: mp.rmapBlock - mp.ibtBlock, Owner: ondisk.RmapOwnInobt},
		{StartBlock: mp.rmapBlock, BlockCount: 1, Owner: ondisk.RmapOwnAG},
	}
	if g.Reflink {
		recs = append(recs, ondisk.RmapRec{StartBlock: mp.refcBlock, BlockCount: 1, Owner: ondisk.RmapOwnRefc})
	}
	if g.logInAG(a.agno) {
		recs = append(recs, ondisk.RmapRec{StartBlock: g.logAGBno(), BlockCount: g.LogBlocks, Owner: ondisk.RmapOwnLog})
	}
	for i, r := range recs {
		if err := a.rmap.insert(i, rmapRec(r)); err != nil {
			return err
		}
	}
	return nil
}

func rmapRec(r ondisk.RmapRec) []byte {
	b := make([]byte, ondisk.RmapRecSize)
	r.Encode(b)
	return b
}

// fillFreelist is xfs_alloc_fix_freelist as mkfs.xfs calls it on a new
// AG: allocate blocks for the AGFL from the by-size tree. mkfs.xfs ignores
// failure, leaving the AGFL short.
func (g *Geometry) fillFreelist(a *agLayout) error {
	need := uint32(g.mp.minFreelist)
	if a.freeblks < need { // xfs_alloc_space_available
		return nil
	}
	for uint32(len(a.agfl)) < need {
		bno, n, ok := a.allocSize(need - uint32(len(a.agfl)))
		if !ok {
			return nil
		}
		if err := a.allocated(bno, n); err != nil {
			return err
		}
		for b := bno; b < bno+n; b++ {
			a.agfl = append(a.agfl, b)
		}
		if g.Rmapbt {
			if err := a.rmapMap(bno, n, ondisk.RmapOwnAG); err != nil {
				return err
			}
		}
	}
	return nil
}

// allocSize picks an extent for an XFS_ALLOCTYPE_THIS_AG allocation of up
// to maxlen blocks (xfs_alloc_ag_vextent_size, alignment 1): the first
// by-size record holding maxlen blocks, else the largest; the blocks come
// from its start.
func (a *agLayout) allocSize(maxlen uint32) (uint32, uint32, bool) {
	best := -1
	for i, e := range a.free {
		if e.len >= maxlen && (best < 0 || cntLess(e, a.free[best])) {
			best = i
		}
	}
	if best < 0 {
		for i, e := range a.free {
			if best < 0 || cntLess(a.free[best], e) {
				best = i
			}
		}
	}
	if best < 0 || a.free[best].len == 0 {
		return 0, 0, false
	}
	e := a.free[best]
	return e.bno, min(e.len, maxlen), true
}

// allocNear picks the start of an aligned XFS_ALLOCTYPE_NEAR_BNO
// allocation of n blocks whose target lies before all free space (the
// inode B-tree root): the lowest aligned start that fits.
func (a *agLayout) allocNear(n, align uint32) (uint32, bool) {
	for _, e := range a.free {
		start := (e.bno + align - 1) / align * align
		if start >= e.bno && uint64(start)+uint64(n) <= uint64(e.bno)+uint64(e.len) {
			return start, true
		}
	}
	return 0, false
}

// allocated removes [rbno, rbno+rlen) from the free extent holding it and
// updates both free space B-trees and the AGF counters the way
// xfs_alloc_fixup_trees and the by-size tree's last-record hook do.
func (a *agLayout) allocated(rbno, rlen uint32) error {
	fi := -1
	for i, e := range a.free {
		if rbno >= e.bno && rbno+rlen <= e.bno+e.len {
			fi = i
			break
		}
	}
	if fi < 0 {
		return fmt.Errorf("AG %d: blocks %d+%d are not free", a.agno, rbno, rlen)
	}
	f := a.free[fi]
	var rest []extent
	switch {
	case rbno == f.bno && rlen == f.len:
	case rbno == f.bno:
		rest = []extent{{rbno + rlen, f.len - rlen}}
	case rbno+rlen == f.bno+f.len:
		rest = []extent{{f.bno, f.len - rlen}}
	default:
		rest = []extent{{f.bno, rbno - f.bno}, {rbno + rlen, f.bno + f.len - rbno - rlen}}
	}

	// By-size tree: delete the old record, insert the remainders.
	cnt := a.cntExtents()
	ci := 0
	for cnt[ci] != f {
		ci++
	}
	a.cnt.remove(ci)
	cnt = append(cnt[:ci], cnt[ci+1:]...)
	if ci == len(cnt) { // the last record went: longest is the new last
		a.longest = 0
		if len(cnt) > 0 {
			a.longest = cnt[len(cnt)-1].len
		}
	}
	for _, r := range rest {
		pos := 0
		for pos < len(cnt) && cntLess(cnt[pos], r) {
			pos++
		}
		if err := a.cnt.insert(pos, allocRec(r)); err != nil {
			return err
		}
		cnt = append(cnt[:pos], append([]extent{r}, cnt[pos:]...)...)
		if r.len > a.longest {
			a.longest = r.len
		}
	}

	// By-block tree: update in place (or delete), insert the second part.
	if len(rest) == 0 {
		a.bno.remove(fi)
	} else {
		a.bno.set(fi, allocRec(rest[0]))
	}
	if len(rest) == 2 {
		if err := a.bno.insert(fi+1, allocRec(rest[1])); err != nil {
			return err
		}
	}
	a.free = append(a.free[:fi], append(rest, a.free[fi+1:]...)...)
	a.freeblks -= rlen
	return nil
}

// cntExtents lists the by-size records currently in the tree.
func (a *agLayout) cntExtents() []extent {
	out := make([]extent, a.cnt.n)
	for i := range out {
		r, _ := ondisk.DecodeAllocRec(a.cnt.rec(i))
		out[i] = extent{r.StartBlock, r.BlockCount}
	}
	return out
}

// rmapMap is xfs_rmap_map for a special owner: the new extent merges with
// an adjacent record of the same owner on either side.
func (a *agLayout) rmapMap(bno, n uint32, owner uint64) error {
	recs := make([]ondisk.RmapRec, a.rmap.n)
	for i := range recs {
		recs[i], _ = ondisk.DecodeRmapRec(a.rmap.rec(i))
	}
	li := -1 // last record starting at or before bno
	for i, r := range recs {
		if r.StartBlock <= bno {
			li = i
		}
	}
	gi := li + 1
	haveLeft := li >= 0 && recs[li].Owner == owner && recs[li].StartBlock+recs[li].BlockCount == bno
	haveRight := gi < len(recs) && recs[gi].Owner == owner && bno+n == recs[gi].StartBlock
	switch {
	case haveLeft:
		l := recs[li]
		l.BlockCount += n
		if haveRight {
			l.BlockCount += recs[gi].BlockCount
			a.rmap.remove(gi)
		}
		a.rmap.set(li, rmapRec(l))
	case haveRight:
		r := recs[gi]
		r.StartBlock = bno
		r.BlockCount += n
		a.rmap.set(gi, rmapRec(r))
	default:
		return a.rmap.insert(gi, rmapRec(ondisk.RmapRec{StartBlock: bno, BlockCount: n, Owner: owner}))
	}
	return nil
}

// allocRootChunk is xfs_ialloc_ag_alloc for the first chunk of AG 0 and
// the allocation of the root directory and the two realtime inodes in it.
func (g *Geometry) allocRootChunk(fl *fsLayout) error {
	mp := g.mp
	a := fl.ags[0]
	n := uint32(mp.iallocBlks)
	align := mp.clusterAlign
	if mp.iallocAlign != 0 {
		align = mp.iallocAlign
	}
	bno, ok := a.allocNear(n, align)
	if !ok && mp.iallocAlign != 0 {
		bno, ok = a.allocNear(n, mp.clusterAlign)
	}
	if !ok {
		return fmt.Errorf("AG 0: no room for the root inode chunk (%d blocks aligned to %d)", n, align)
	}
	if err := a.allocated(bno, n); err != nil {
		return err
	}
	if g.Rmapbt {
		if err := a.rmapMap(bno, n, ondisk.RmapOwnInodes); err != nil {
			return err
		}
	}
	fl.chunkBno, fl.chunkLen = bno, n
	fl.fdblocks -= uint64(n)

	first := bno << g.SB.InoPBLog
	inodes := uint32(mp.iallocInos)
	var recs []ondisk.InobtRec
	for s := first; s < first+inodes; s += 64 {
		recs = append(recs, ondisk.InobtRec{StartIno: s, Count: 64, FreeCount: 64, Free: ^uint64(0), Sparse: g.Sparse})
	}
	// Root, realtime bitmap and realtime summary take the first three.
	recs[0].Free &^= 7
	recs[0].FreeCount -= 3
	for i, r := range recs {
		b := make([]byte, ondisk.InobtRecSize)
		r.Encode(b)
		if err := a.inobt.insert(i, b); err != nil {
			return err
		}
		if err := a.finobt.insert(i, b); err != nil {
			return err
		}
	}
	a.count = inodes
	a.ifree = inodes - 3
	a.newino = first
	fl.icount, fl.ifree = uint64(inodes), uint64(inodes-3)
	fl.rootIno = uint64(first)
	fl.rbmIno = uint64(first + 1)
	fl.rsumIno = uint64(first + 2)
	if want := g.expectedRootIno(); fl.rootIno != want {
		return fmt.Errorf("root inode %d allocated away from where xfs_repair expects it (%d)", fl.rootIno, want)
	}
	return nil
}

// expectedRootIno is xfs_ialloc_calc_rootino, which xfs_repair uses to
// check the root inode's location.
func (g *Geometry) expectedRootIno() uint64 {
	mp := g.mp
	first := uint64(howmany(uint64(4*g.SectorSize), uint64(g.BlockSize)))
	first += 3 + uint64(mp.minFreelist)
	if g.Finobt {
		first++
	}
	if g.Rmapbt {
		first++
	}
	if g.Reflink {
		first++
	}
	if g.logInAG(0) {
		first += uint64(g.LogBlocks)
	}
	if g.DSunit != 0 && mp.iallocAlign > 0 {
		first = (first + uint64(g.DSunit) - 1) / uint64(g.DSunit) * uint64(g.DSunit)
	} else if g.SB.InoAlignMt > 1 {
		al := uint64(g.SB.InoAlignMt)
		first = (first + al - 1) / al * al
	}
	return first << g.SB.InoPBLog
}
