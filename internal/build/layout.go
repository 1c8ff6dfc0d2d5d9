package build

import (
	"fmt"
	"sort"

	"xfskit/ondisk"
)

// This file computes the final metadata of a freshly made filesystem the
// way mkfs.xfs arrives at it: AG headers and B-tree roots as
// xfs_ag_init_headers writes them, the AGFL filled by
// xfs_alloc_fix_freelist, and the root inode chunk placed by the inode
// allocator. The allocator decisions are reproduced for the states an
// empty filesystem can be in, not in general.

type extent struct{ bno, len uint32 }

// agLayout is the final content of one allocation group.
type agLayout struct {
	agno    uint32
	length  uint32
	free    []extent // by block number
	agfl    []uint32 // blocks on the free list, in list order
	rmaps   []ondisk.RmapRec
	inobt   []ondisk.InobtRec
	count   uint32 // allocated inodes (AGI count)
	ifree   uint32 // free inodes among them
	newino  uint32
	longest uint32
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

// layout computes the final state of every AG.
func (g *Geometry) layout() (*fsLayout, error) {
	mp := g.mp
	fl := &fsLayout{fdblocks: g.SB.FDBlocks}
	for agno := uint32(0); agno < g.AGCount; agno++ {
		a := &agLayout{agno: agno, length: g.agLength(agno), newino: ondisk.NullAGIno}
		g.initFreeSpace(a)
		if g.Rmapbt {
			g.initRmaps(a)
		}
		// xfs_alloc_fix_freelist: fill the AGFL from the by-size tree.
		for len(a.agfl) < mp.minFreelist {
			bno, n, ok := a.allocSize(uint32(mp.minFreelist - len(a.agfl)))
			if !ok {
				return nil, fmt.Errorf("AG %d: no space for the free list", agno)
			}
			for b := bno; b < bno+n; b++ {
				a.agfl = append(a.agfl, b)
			}
			if g.Rmapbt {
				a.addRmap(bno, n, ondisk.RmapOwnAG)
			}
		}
		fl.ags = append(fl.ags, a)
	}
	if err := g.allocRootChunk(fl); err != nil {
		return nil, err
	}
	for _, a := range fl.ags {
		a.longest = 0
		for _, e := range a.free {
			a.longest = max(a.longest, e.len)
		}
	}
	return fl, nil
}

// initFreeSpace is xfs_freesp_init_recs plus the AGF counters.
func (g *Geometry) initFreeSpace(a *agLayout) {
	start := g.mp.preallocBlocks
	if !g.logInAG(a.agno) {
		if a.length > start {
			a.free = []extent{{start, a.length - start}}
		}
		return
	}
	logAGB := uint32(g.LogStart & (1<<g.SB.AGBlkLog - 1))
	if logAGB != start {
		a.free = append(a.free, extent{start, logAGB - start}) // stripe alignment padding
	}
	after := logAGB + g.LogBlocks
	if after < a.length {
		a.free = append(a.free, extent{after, a.length - after})
	} else {
		a.free = nil // the log ate the AG: mkfs.xfs records no free space
	}
}

// initRmaps is xfs_rmaproot_init: the static metadata owners.
func (g *Geometry) initRmaps(a *agLayout) {
	mp := g.mp
	a.rmaps = []ondisk.RmapRec{
		{StartBlock: 0, BlockCount: mp.bnoBlock, Owner: ondisk.RmapOwnFS},
		{StartBlock: mp.bnoBlock, BlockCount: 2, Owner: ondisk.RmapOwnAG},
		{StartBlock: mp.ibtBlock, BlockCount: mp.rmapBlock - mp.ibtBlock, Owner: ondisk.RmapOwnInobt},
		{StartBlock: mp.rmapBlock, BlockCount: 1, Owner: ondisk.RmapOwnAG},
	}
	if g.Reflink {
		a.rmaps = append(a.rmaps, ondisk.RmapRec{StartBlock: mp.refcBlock, BlockCount: 1, Owner: ondisk.RmapOwnRefc})
	}
	if g.logInAG(a.agno) {
		a.rmaps = append(a.rmaps, ondisk.RmapRec{
			StartBlock: uint32(g.LogStart & (1<<g.SB.AGBlkLog - 1)), BlockCount: g.LogBlocks, Owner: ondisk.RmapOwnLog})
	}
}

// allocSize is an XFS_ALLOCTYPE_THIS_AG allocation of up to maxlen blocks
// (xfs_alloc_ag_vextent_size with alignment 1): the smallest free extent
// that holds maxlen blocks, else the largest, used from its start.
func (a *agLayout) allocSize(maxlen uint32) (uint32, uint32, bool) {
	best := -1
	for i, e := range a.free {
		if e.len >= maxlen && (best < 0 || e.len < a.free[best].len) {
			best = i
		}
	}
	if best < 0 {
		for i, e := range a.free {
			if best < 0 || e.len >= a.free[best].len {
				best = i
			}
		}
	}
	if best < 0 {
		return 0, 0, false
	}
	e := a.free[best]
	n := min(e.len, maxlen)
	a.take(e.bno, n)
	return e.bno, n, true
}

// allocNear is an aligned XFS_ALLOCTYPE_NEAR_BNO allocation of exactly n
// blocks near a target that lies before all free space (the inode B-tree
// root): the lowest aligned start that fits wins.
func (a *agLayout) allocNear(n, align uint32) (uint32, bool) {
	for _, e := range a.free {
		start := (e.bno + align - 1) / align * align
		if start >= e.bno && uint64(start)+uint64(n) <= uint64(e.bno)+uint64(e.len) {
			a.take(start, n)
			return start, true
		}
	}
	return 0, false
}

// take removes [bno, bno+n) from the free extent containing it.
func (a *agLayout) take(bno, n uint32) {
	for i, e := range a.free {
		if bno < e.bno || bno+n > e.bno+e.len {
			continue
		}
		var repl []extent
		if bno > e.bno {
			repl = append(repl, extent{e.bno, bno - e.bno})
		}
		if end := e.bno + e.len; bno+n < end {
			repl = append(repl, extent{bno + n, end - bno - n})
		}
		a.free = append(a.free[:i], append(repl, a.free[i+1:]...)...)
		return
	}
}

// addRmap is xfs_rmap_map for a special owner: adjacent records of the
// same owner merge.
func (a *agLayout) addRmap(bno, n uint32, owner uint64) {
	a.rmaps = append(a.rmaps, ondisk.RmapRec{StartBlock: bno, BlockCount: n, Owner: owner})
	sort.Slice(a.rmaps, func(i, j int) bool { return a.rmaps[i].StartBlock < a.rmaps[j].StartBlock })
	for i := 0; i+1 < len(a.rmaps); {
		l, r := a.rmaps[i], a.rmaps[i+1]
		if l.Owner == r.Owner && l.StartBlock+l.BlockCount == r.StartBlock {
			a.rmaps[i].BlockCount += r.BlockCount
			a.rmaps = append(a.rmaps[:i+1], a.rmaps[i+2:]...)
			continue
		}
		i++
	}
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
	if g.Rmapbt {
		a.addRmap(bno, n, ondisk.RmapOwnInodes)
	}
	fl.chunkBno, fl.chunkLen = bno, n
	fl.fdblocks -= uint64(n)

	inoPBLog := uint32(g.SB.InoPBLog)
	first := bno << inoPBLog
	inodes := uint32(mp.iallocInos)
	for s := first; s < first+inodes; s += 64 {
		a.inobt = append(a.inobt, ondisk.InobtRec{
			StartIno: s, Count: 64, FreeCount: 64, Free: ^uint64(0), Sparse: g.Sparse})
	}
	// Root, realtime bitmap and realtime summary take the first three.
	a.inobt[0].Free &^= 7
	a.inobt[0].FreeCount -= 3
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
