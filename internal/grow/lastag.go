package grow

import (
	"cmp"
	"fmt"
	"slices"

	"xfskit/internal/image"
	"xfskit/internal/pack"
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// Extending the old last AG adds one free extent at its end (or lengthens
// the free extent already ending there), as xfs_ag_extend_space frees the
// new space. Free space is not in the rmapbt, so only the two free space
// B-trees, the AGF and the AGI change. Instead of replaying the kernel's
// record insertion with its splits and merges, both trees are rewritten
// bottom-up (pack.WriteAGBtree) from their records into the blocks they
// already own; if the new shape needs a block more, it comes off the AGFL,
// and blocks it no longer needs go onto the AGFL. AGFL blocks and free
// space tree blocks are both owned by XFS_RMAP_OWN_AG, so the rmapbt, the
// AG's free block count (freeblks + flcount + btreeblks) and sb_fdblocks
// see only the added blocks.

// lastAG is the planned new state of the extended last AG.
type lastAG struct {
	agno           uint32
	oldLen, newLen uint32
	agf            *ondisk.AGF
	agi            *ondisk.AGI
	agfl           *ondisk.AGFL
	free           []pack.AGExtent // after the extension, by block
	bnoBlocks      []uint32        // new bnobt blocks, root first
	cntBlocks      []uint32
}

// planLastAG reads and cross-checks the free space of AG agno and plans its
// extension to newLen blocks. Nothing is written.
func planLastAG(fs *xfs.FS, agno, newLen uint32) (*lastAG, error) {
	sb := fs.SB
	where := fmt.Sprintf("AG %d", agno)
	agf, err := fs.AGF(agno)
	if err != nil {
		return nil, err
	}
	agi, err := fs.AGI(agno)
	if err != nil {
		return nil, err
	}
	agfl, err := fs.AGFL(agno)
	if err != nil {
		return nil, err
	}
	oldLen := sb.AGLength(agno)
	if agf.Length != oldLen || agi.Length != oldLen {
		return nil, ondisk.Corrupt("AGF", where, "length", "AGF length %d, AGI length %d, superblock gives %d", agf.Length, agi.Length, oldLen)
	}
	flist, err := agfl.FreeList(agf, agno, sb)
	if err != nil {
		return nil, err
	}

	type tree struct {
		blocks []uint32
		recs   []pack.AGExtent
	}
	walk := func(root, levels uint32, geom ondisk.BtreeGeometry) (tree, error) {
		var t tree
		err := fs.WalkAGBtree(agno, root, int(levels), geom, func(b *xfs.BtreeBlock) error {
			t.blocks = append(t.blocks, b.AGBno)
			for i := 0; b.IsLeaf() && i < b.NumRecs(); i++ {
				r, err := ondisk.DecodeAllocRec(b.Rec(i))
				if err != nil {
					return err
				}
				t.recs = append(t.recs, pack.AGExtent{Bno: r.StartBlock, Len: r.BlockCount})
			}
			return nil
		})
		return t, err
	}
	bno, err := walk(agf.BnoRoot, agf.BnoLevel, ondisk.BnobtGeom)
	if err != nil {
		return nil, err
	}
	cnt, err := walk(agf.CntRoot, agf.CntLevel, ondisk.CntbtGeom)
	if err != nil {
		return nil, err
	}

	// The trees are verified block by block; check that they agree with
	// each other and the AGF before building on them.
	var total uint64
	for i, e := range bno.recs {
		if e.Len == 0 || uint64(e.Bno)+uint64(e.Len) > uint64(oldLen) || i > 0 && bno.recs[i-1].Bno+bno.recs[i-1].Len > e.Bno {
			return nil, ondisk.Corrupt("bnobt", where, "", "free extent %d+%d overlaps its neighbour or leaves the AG", e.Bno, e.Len)
		}
		total += uint64(e.Len)
	}
	byBno := slices.Clone(cnt.recs)
	slices.SortFunc(byBno, func(a, b pack.AGExtent) int { return cmp.Compare(a.Bno, b.Bno) })
	if !slices.Equal(byBno, bno.recs) {
		return nil, ondisk.Corrupt("cntbt", where, "", "the by-size free space tree (%d records) does not hold the extents of the by-block tree (%d records)", len(cnt.recs), len(bno.recs))
	}
	if total != uint64(agf.FreeBlks) {
		return nil, ondisk.Corrupt("AGF", where, "freeblks", "%d, but the free space trees hold %d blocks", agf.FreeBlks, total)
	}
	oldTreeBlocks := uint32(len(bno.blocks) + len(cnt.blocks) - 2)
	if sb.HasRmapbt() {
		oldTreeBlocks += agf.RmapBlocks - 1
	}
	if agf.BtreeBlks != oldTreeBlocks {
		return nil, ondisk.Corrupt("AGF", where, "btreeblks", "%d, but the free space and rmap trees have %d blocks besides their roots", agf.BtreeBlks, oldTreeBlocks)
	}

	free := slices.Clone(bno.recs)
	if n := len(free); n > 0 && free[n-1].Bno+free[n-1].Len == oldLen {
		free[n-1].Len += newLen - oldLen
	} else {
		free = append(free, pack.AGExtent{Bno: oldLen, Len: newLen - oldLen})
	}
	per, err := pack.AGBtreeBlocks(int(sb.BlockSize), ondisk.BnobtMagic, len(free))
	if err != nil {
		return nil, err
	}
	if c, err := pack.AGBtreeBlocks(int(sb.BlockSize), ondisk.CntbtMagic, len(free)); err != nil || c != per {
		return nil, fmt.Errorf("%s: by-block and by-size trees of %d records differ in size", where, len(free))
	}
	pool := append(slices.Clone(bno.blocks), cnt.blocks...)
	// Blocks are moved between the trees and the free list: they must
	// be distinct, or the move would hand one block out twice.
	seen := map[uint32]bool{}
	for _, b := range append(slices.Clone(pool), flist...) {
		if seen[b] {
			return nil, ondisk.Corrupt("AGF", where, "", "block %d is used twice by the free space trees and the free list", b)
		}
		seen[b] = true
	}
	need := 2 * per
	size := uint32(len(agfl.Bno))
	switch {
	case need > len(pool):
		k := need - len(pool)
		if k > len(flist) {
			return nil, fmt.Errorf("%s: the rebuilt free space trees need %d blocks more and the free list holds %d; mount the filesystem once and retry", where, k, len(flist))
		}
		pool = append(pool, flist[:k]...)
		agf.FLFirst = (agf.FLFirst + uint32(k)) % size
		agf.FLCount -= uint32(k)
	case need < len(pool):
		k := len(pool) - need
		if agf.FLCount+uint32(k) > size {
			return nil, fmt.Errorf("%s: the rebuilt free space trees free %d blocks and the free list has room for %d; xfskit cannot extend this AG offline", where, k, size-agf.FLCount)
		}
		for _, b := range pool[need:] {
			agf.FLLast = (agf.FLLast + 1) % size
			agfl.Bno[agf.FLLast] = b
			agf.FLCount++
		}
		pool = pool[:need]
	}
	agf.BtreeBlks = agf.BtreeBlks - uint32(len(bno.blocks)+len(cnt.blocks)-2) + uint32(need-2)
	agf.Length, agi.Length = newLen, newLen
	agf.FreeBlks += newLen - oldLen
	agf.Longest = 0
	for _, e := range free {
		agf.Longest = max(agf.Longest, e.Len)
	}
	return &lastAG{agno: agno, oldLen: oldLen, newLen: newLen, agf: agf, agi: agi, agfl: agfl, free: free,
		bnoBlocks: pool[:per], cntBlocks: pool[per:]}, nil
}

// write writes the rebuilt trees and the AG headers.
func (l *lastAG) write(sb *ondisk.Superblock, dev image.Device) error {
	recs := func(es []pack.AGExtent) []byte {
		b := make([]byte, len(es)*ondisk.AllocRecSize)
		for i, e := range es {
			ondisk.AllocRec{StartBlock: e.Bno, BlockCount: e.Len}.Encode(b[i*ondisk.AllocRecSize:])
		}
		return b
	}
	byCnt := slices.Clone(l.free)
	slices.SortFunc(byCnt, func(a, b pack.AGExtent) int { return cmp.Or(cmp.Compare(a.Len, b.Len), cmp.Compare(a.Bno, b.Bno)) })
	lv, err := pack.WriteAGBtree(sb, dev, l.agno, ondisk.BnobtMagic, recs(l.free), l.bnoBlocks)
	if err != nil {
		return err
	}
	l.agf.BnoRoot, l.agf.BnoLevel = l.bnoBlocks[0], uint32(lv)
	if lv, err = pack.WriteAGBtree(sb, dev, l.agno, ondisk.CntbtMagic, recs(byCnt), l.cntBlocks); err != nil {
		return err
	}
	l.agf.CntRoot, l.agf.CntLevel = l.cntBlocks[0], uint32(lv)

	// Each header is encoded over its old sector, so bytes past the
	// structure stay as they were.
	ss := int(sb.SectSize)
	sect := make([]byte, ss)
	put := func(n int, what string, encode func([]byte)) error {
		off := int64(sb.AGBToDaddr(l.agno, 0))<<ondisk.BBShift + int64(n*ss)
		if _, err := dev.ReadAt(sect, off); err != nil {
			return fmt.Errorf("AG %d: reading the %s: %w", l.agno, what, err)
		}
		encode(sect)
		if _, err := dev.WriteAt(sect, off); err != nil {
			return fmt.Errorf("AG %d: writing the %s: %w", l.agno, what, err)
		}
		return nil
	}
	if err := put(3, "AGFL", l.agfl.Encode); err != nil {
		return err
	}
	if err := put(2, "AGI", l.agi.Encode); err != nil {
		return err
	}
	return put(1, "AGF", l.agf.Encode)
}
