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
	for i, e := range recs {
		if err := a.bno.insert(i, allocRec(e)); err != nil {
			return err
		}
	}
	// mkfs.xfs writes the by-size root with the records in block order
	// even when the padding before the log is the larger extent; the
	// lookups below then see an unsorted leaf, as libxfs does.
	for i, e := range recs {
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
		bno, n, cntPtr, ok := a.allocSize(need - uint32(len(a.agfl)))
		if !ok {
			return nil
		}
		if err := a.fixupTrees(cntPtr, a.cntRec(cntPtr), bno, n); err != nil {
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

type lookupDir int

const (
	lookupLE lookupDir = iota
	lookupEQ
	lookupGE
)

// lookup is xfs_btree_lookup on a single leaf: a binary search (which
// trusts the records to be sorted, as libxfs does) returning the 1-based
// cursor position and whether a record satisfying dir is there. diff
// compares a record with the search key.
func (l *leaf) lookup(dir lookupDir, diff func(rec []byte) int64) (int, bool) {
	if l.n == 0 {
		if dir != lookupLE {
			return 1, false
		}
		return 0, false
	}
	low, high, keyno := 1, l.n, 0
	d := int64(1)
	for low <= high {
		keyno = (low + high) >> 1
		d = diff(l.rec(keyno - 1))
		switch {
		case d < 0:
			low = keyno + 1
		case d > 0:
			high = keyno - 1
		}
		if d == 0 {
			break
		}
	}
	if dir != lookupLE && d < 0 {
		keyno++
	} else if dir == lookupLE && d > 0 {
		keyno--
	}
	if keyno == 0 || keyno > l.n {
		return keyno, false
	}
	return keyno, dir != lookupEQ || d == 0
}

func decodeExtent(rec []byte) extent {
	r, _ := ondisk.DecodeAllocRec(rec)
	return extent{r.StartBlock, r.BlockCount}
}

// cntKey and bnoKey are the key comparisons of the two free space trees.
func cntKey(e extent) func([]byte) int64 {
	return func(rec []byte) int64 {
		r := decodeExtent(rec)
		if d := int64(r.len) - int64(e.len); d != 0 {
			return d
		}
		return int64(r.bno) - int64(e.bno)
	}
}

func bnoKey(bno uint32) func([]byte) int64 {
	return func(rec []byte) int64 { return int64(decodeExtent(rec).bno) - int64(bno) }
}

func (a *agLayout) cntRec(ptr int) extent { return decodeExtent(a.cnt.rec(ptr - 1)) }

// allocSize is xfs_alloc_ag_vextent_size for an XFS_ALLOCTYPE_THIS_AG
// allocation of 1 to maxlen blocks with alignment 1. It returns the start
// and length chosen and the by-size cursor position of the free extent
// they come from.
func (a *agLayout) allocSize(maxlen uint32) (uint32, uint32, int, bool) {
	ptr, ok := a.cnt.lookup(lookupGE, cntKey(extent{0, maxlen}))
	var f extent
	if !ok {
		// xfs_alloc_ag_vextent_small: the last (largest) record.
		ptr--
		if ptr < 1 {
			return 0, 0, 0, false
		}
		if f = a.cntRec(ptr); f.len == 0 {
			return 0, 0, 0, false
		}
	} else {
		for {
			if f = a.cntRec(ptr); f.len >= maxlen {
				break
			}
			if ptr++; ptr > a.cnt.n {
				return 0, 0, 0, false // only busy extents: cannot happen here
			}
		}
	}
	rlen := min(maxlen, f.len)
	if rlen < maxlen {
		// Search left for a record that holds more of the request.
		best, bestLen := f, rlen
		for p := ptr - 1; p >= 1; p-- {
			c := a.cntRec(p)
			if c.len < bestLen {
				break
			}
			if l := min(maxlen, c.len); l > bestLen {
				best, bestLen = c, l
				if l == maxlen {
					break
				}
			}
		}
		p, ok := a.cnt.lookup(lookupEQ, cntKey(best))
		if !ok {
			return 0, 0, 0, false // libxfs reports corruption here
		}
		f, ptr, rlen = best, p, bestLen
	}
	return f.bno, rlen, ptr, true
}

// allocNear is xfs_alloc_ag_vextent_near for an aligned allocation of
// exactly n blocks near target when the by-size tree is a single leaf
// (its "last block" pass): the candidate whose aligned start is closest
// to the target wins, later records winning ties.
func (a *agLayout) allocNear(target, n, align uint32) (uint32, extent, bool) {
	ptr, ok := a.cnt.lookup(lookupGE, cntKey(extent{0, n}))
	if !ok {
		ptr--
		if ptr < 1 || a.cntRec(ptr).len == 0 {
			return 0, extent{}, false
		}
		ptr = 1
	} else if align > 1 {
		ptr = 1
	}
	// Skip leading records too short for the request.
	for ptr <= a.cnt.n && a.cntRec(ptr).len < n {
		ptr++
	}
	var best extent
	bestBno := uint32(0)
	bestDiff := ^uint32(0)
	found := false
	for ; ptr <= a.cnt.n; ptr++ {
		f := a.cntRec(ptr)
		if f.len < n {
			break // the by-size walk stops at a record below minlen
		}
		bnoa, lena := f.bno, f.len
		if align > 1 {
			bnoa = (f.bno + align - 1) / align * align
			if d := bnoa - f.bno; d >= f.len {
				lena = 0
			} else {
				lena = f.len - d
			}
		}
		if lena < n {
			continue
		}
		bnew, diff, ok := computeDiff(target, n, align, bnoa, lena)
		if !ok || diff > bestDiff {
			continue
		}
		best, bestBno, bestDiff, found = f, bnew, diff, true
		if diff == 0 {
			break
		}
	}
	return bestBno, best, found
}

// computeDiff is xfs_alloc_compute_diff for metadata: the best aligned
// start for wantlen blocks in the free extent and its distance from
// wantbno.
func computeDiff(wantbno, wantlen, align, freebno, freelen uint32) (uint32, uint32, bool) {
	freeend := freebno + freelen
	wantend := wantbno + wantlen
	absdiff := func(a, b uint32) uint32 {
		if a > b {
			return a - b
		}
		return b - a
	}
	roundup := func(v uint32) uint32 { return (v + align - 1) / align * align }
	var nb uint32
	switch {
	case freebno >= wantbno:
		if nb = roundup(freebno); nb >= freeend {
			return 0, 0, false
		}
	case freeend >= wantend && align > 1:
		// Unsigned arithmetic as in C, wrap-around included.
		nb1 := roundup(wantbno)
		nb2 := nb1 - align
		ok1, ok2 := nb1 < freeend, nb2 >= freebno
		var l1, l2 uint32
		if ok1 {
			l1 = min(wantlen, freeend-nb1)
		}
		if ok2 {
			l2 = min(wantlen, freeend-nb2)
		}
		switch {
		case ok1 && ok2:
			nb = nb1
			if l1 < l2 || l1 == l2 && absdiff(nb1, wantbno) > absdiff(nb2, wantbno) {
				nb = nb2
			}
		case ok2:
			nb = nb2
		case ok1:
			nb = nb1
		default:
			return 0, 0, false
		}
	case freeend >= wantend:
		nb = wantbno
	case align > 1:
		nb = roundup(freeend - wantlen)
		if nb > freeend-wantlen && nb-align >= freebno {
			nb -= align
		} else if nb >= freeend {
			return 0, 0, false
		}
	default:
		nb = freeend - wantlen
	}
	return nb, absdiff(nb, wantbno), true
}

// fixupTrees is xfs_alloc_fixup_trees: remove [rbno, rbno+rlen) from the
// free extent f (at by-size position cntPtr, or 0 to look it up) in both
// trees, with the by-size tree's last-record hook keeping agf_longest.
func (a *agLayout) fixupTrees(cntPtr int, f extent, rbno, rlen uint32) error {
	if cntPtr == 0 {
		p, ok := a.cnt.lookup(lookupEQ, cntKey(f))
		if !ok {
			return fmt.Errorf("AG %d: free extent %d+%d missing from the by-size tree", a.agno, f.bno, f.len)
		}
		cntPtr = p
	}
	bnoPtr, ok := a.bno.lookup(lookupEQ, bnoKey(f.bno))
	if !ok {
		return fmt.Errorf("AG %d: free extent %d+%d missing from the by-block tree", a.agno, f.bno, f.len)
	}
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

	a.cnt.remove(cntPtr - 1)
	if cntPtr > a.cnt.n { // the last record went: longest is the new last
		a.longest = 0
		if a.cnt.n > 0 {
			a.longest = a.cntRec(a.cnt.n).len
		}
	}
	for _, r := range rest {
		p, _ := a.cnt.lookup(lookupEQ, cntKey(r))
		if err := a.cnt.insert(p-1, allocRec(r)); err != nil {
			return err
		}
		if r.len > a.longest {
			a.longest = r.len
		}
	}

	if len(rest) == 0 {
		a.bno.remove(bnoPtr - 1)
	} else {
		a.bno.set(bnoPtr-1, allocRec(rest[0]))
	}
	if len(rest) == 2 {
		p, _ := a.bno.lookup(lookupEQ, bnoKey(rest[1].bno))
		if err := a.bno.insert(p-1, allocRec(rest[1])); err != nil {
			return err
		}
	}
	a.freeblks -= rlen
	return nil
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
	bno, from, ok := a.allocNear(mp.ibtBlock, n, align)
	if !ok && mp.iallocAlign != 0 {
		bno, from, ok = a.allocNear(mp.ibtBlock, n, mp.clusterAlign)
	}
	if !ok {
		return fmt.Errorf("AG 0: no room for the root inode chunk (%d blocks aligned to %d)", n, align)
	}
	if err := a.fixupTrees(0, from, bno, n); err != nil {
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
