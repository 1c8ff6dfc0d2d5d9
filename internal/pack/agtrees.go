package pack

import (
	"cmp"
	"fmt"
	"io"
	"slices"

	"xfskit/ondisk"
)

// AGExtent is a range of blocks inside one AG.
type AGExtent struct {
	Bno, Len uint32
}

// AGTrees is the final content of one AG's space and inode B-trees, to
// be written bottom-up by WriteAGTrees.
type AGTrees struct {
	AGNo uint32
	// Free is the free space after every allocation (sorted by block,
	// disjoint); the blocks the trees need beyond their roots are taken
	// from its end.
	Free []AGExtent
	// Inodes are the inode chunk records (any order).
	Inodes []ondisk.InobtRec
	// Rmaps are the reverse mappings of every used block except the
	// trees' non-root blocks, which are added (any order). Ignored
	// without an rmapbt.
	Rmaps []ondisk.RmapRec
	// Root blocks of each tree; FinoRoot, RmapRoot and RefcRoot are 0
	// when the filesystem lacks that tree. The refcount tree is written
	// empty (nothing is shared).
	BnoRoot, CntRoot, InoRoot, FinoRoot, RmapRoot, RefcRoot uint32
}

// AGTreesResult holds the AGF and AGI values describing the trees.
type AGTreesResult struct {
	Free                                  []AGExtent // final free space
	FreeBlks, Longest, BtreeBlks          uint32
	BnoLevel, CntLevel, RmapLevel         uint32
	RmapBlocks                            uint32
	RefcLevel, RefcBlocks                 uint32
	InoLevel, FinoLevel, IBlocks, FBlocks uint32
	Count, FreeCount                      uint32
	NewIno                                uint32     // last chunk's first inode, or NullAGIno
	TreeBlocks                            []AGExtent // the non-root tree blocks taken from Free
}

// WriteAGTrees sizes, places and writes the free space, inode, rmap and
// refcount B-trees of one AG. Non-root blocks come from the end of the
// free space; since the trees' sizes depend on the free space record
// count and the rmaps, the sizes are iterated to a fixed point.
func WriteAGTrees(sb *ondisk.Superblock, w io.WriterAt, t *AGTrees) (*AGTreesResult, error) {
	bs := int(sb.BlockSize)
	where := fmt.Sprintf("AG %d", t.AGNo)
	inodes := slices.Clone(t.Inodes)
	slices.SortFunc(inodes, func(a, b ondisk.InobtRec) int { return cmp.Compare(a.StartIno, b.StartIno) })
	var fino []ondisk.InobtRec
	if t.FinoRoot != 0 {
		for _, r := range inodes {
			if r.FreeCount > 0 {
				fino = append(fino, r)
			}
		}
	}
	res := &AGTreesResult{NewIno: ondisk.NullAGIno}
	for _, r := range inodes {
		res.Count += uint32(r.Count)
		res.FreeCount += r.FreeCount
		res.NewIno = r.StartIno
	}
	inoBlocks, err := AGBtreeBlocks(bs, ondisk.InobtMagic, len(inodes))
	if err != nil {
		return nil, err
	}
	finoBlocks := 0
	if t.FinoRoot != 0 {
		if finoBlocks, err = AGBtreeBlocks(bs, ondisk.FinobtMagic, len(fino)); err != nil {
			return nil, err
		}
	}
	rmapOn := t.RmapRoot != 0
	var free []AGExtent
	var rmaps []ondisk.RmapRec
	var inoExtra, spaceExtra []AGExtent
	bnoBlocks, rmapBlocks := 1, 1
	for iter := 0; ; iter++ {
		if iter > 20 {
			return nil, fmt.Errorf("%s: B-tree sizes do not settle", where)
		}
		free = slices.Clone(t.Free)
		var ok bool
		inoExtra, ok = takeTail(&free, uint32(inoBlocks-1+max(finoBlocks-1, 0)))
		if !ok {
			return nil, fmt.Errorf("%s: the inode B-trees: %w", where, ErrNoSpace)
		}
		extra := uint32(2*(bnoBlocks-1) + rmapBlocks - 1)
		if !rmapOn {
			extra = uint32(2 * (bnoBlocks - 1))
		}
		spaceExtra, ok = takeTail(&free, extra)
		if !ok {
			return nil, fmt.Errorf("%s: the free space B-trees: %w", where, ErrNoSpace)
		}
		nb, err := AGBtreeBlocks(bs, ondisk.BnobtMagic, len(free))
		if err != nil {
			return nil, err
		}
		nr := 1
		if rmapOn {
			rmaps = slices.Clone(t.Rmaps)
			for _, e := range inoExtra {
				rmaps = append(rmaps, ondisk.RmapRec{StartBlock: e.Bno, BlockCount: e.Len, Owner: ondisk.RmapOwnInobt})
			}
			for _, e := range spaceExtra {
				rmaps = append(rmaps, ondisk.RmapRec{StartBlock: e.Bno, BlockCount: e.Len, Owner: ondisk.RmapOwnAG})
			}
			rmaps = MergeRmaps(rmaps)
			if nr, err = AGBtreeBlocks(bs, ondisk.RmapbtMagic, len(rmaps)); err != nil {
				return nil, err
			}
		}
		if nb == bnoBlocks && nr == rmapBlocks {
			break
		}
		bnoBlocks, rmapBlocks = nb, nr
	}

	// Hand out the taken blocks: inode trees first, then free space
	// trees and the rmapbt.
	inoList := blockList(inoExtra)
	spaceList := blockList(spaceExtra)
	res.TreeBlocks = append(slices.Clone(inoExtra), spaceExtra...)
	write := func(magic uint32, root uint32, recs []byte, nblocks int, from *[]uint32) (uint32, error) {
		blocks := append([]uint32{root}, (*from)[:nblocks-1]...)
		*from = (*from)[nblocks-1:]
		lv, err := WriteAGBtree(sb, w, t.AGNo, magic, recs, blocks)
		return uint32(lv), err
	}
	inoRecs := encodeInobt(inodes)
	if res.InoLevel, err = write(ondisk.InobtMagic, t.InoRoot, inoRecs, inoBlocks, &inoList); err != nil {
		return nil, err
	}
	res.IBlocks = uint32(inoBlocks)
	if t.FinoRoot != 0 {
		if res.FinoLevel, err = write(ondisk.FinobtMagic, t.FinoRoot, encodeInobt(fino), finoBlocks, &inoList); err != nil {
			return nil, err
		}
		res.FBlocks = uint32(finoBlocks)
	}
	bno := make([]byte, 0, len(free)*ondisk.AllocRecSize)
	for _, e := range free {
		bno = appendAlloc(bno, e)
		res.FreeBlks += e.Len
		res.Longest = max(res.Longest, e.Len)
	}
	byCnt := slices.Clone(free)
	slices.SortFunc(byCnt, func(a, b AGExtent) int { return cmp.Or(cmp.Compare(a.Len, b.Len), cmp.Compare(a.Bno, b.Bno)) })
	cnt := make([]byte, 0, len(free)*ondisk.AllocRecSize)
	for _, e := range byCnt {
		cnt = appendAlloc(cnt, e)
	}
	if res.BnoLevel, err = write(ondisk.BnobtMagic, t.BnoRoot, bno, bnoBlocks, &spaceList); err != nil {
		return nil, err
	}
	if res.CntLevel, err = write(ondisk.CntbtMagic, t.CntRoot, cnt, bnoBlocks, &spaceList); err != nil {
		return nil, err
	}
	res.BtreeBlks = uint32(2 * (bnoBlocks - 1))
	if rmapOn {
		recs := make([]byte, len(rmaps)*ondisk.RmapRecSize)
		for i, r := range rmaps {
			r.Encode(recs[i*ondisk.RmapRecSize:])
		}
		if res.RmapLevel, err = write(ondisk.RmapbtMagic, t.RmapRoot, recs, rmapBlocks, &spaceList); err != nil {
			return nil, err
		}
		res.RmapBlocks = uint32(rmapBlocks)
		res.BtreeBlks += uint32(rmapBlocks - 1)
	}
	if t.RefcRoot != 0 {
		if res.RefcLevel, err = write(ondisk.RefcbtMagic, t.RefcRoot, nil, 1, &spaceList); err != nil {
			return nil, err
		}
		res.RefcBlocks = 1
	}
	res.Free = free
	return res, nil
}

func appendAlloc(b []byte, e AGExtent) []byte {
	var r [ondisk.AllocRecSize]byte
	ondisk.AllocRec{StartBlock: e.Bno, BlockCount: e.Len}.Encode(r[:])
	return append(b, r[:]...)
}

func encodeInobt(recs []ondisk.InobtRec) []byte {
	out := make([]byte, len(recs)*ondisk.InobtRecSize)
	for i, r := range recs {
		r.Encode(out[i*ondisk.InobtRecSize:])
	}
	return out
}

// takeTail removes n blocks from the end of the free space (from the last
// extents) and returns them in increasing order.
func takeTail(free *[]AGExtent, n uint32) ([]AGExtent, bool) {
	var out []AGExtent
	f := *free
	for n > 0 {
		if len(f) == 0 {
			return nil, false
		}
		last := &f[len(f)-1]
		k := min(n, last.Len)
		last.Len -= k
		out = append([]AGExtent{{last.Bno + last.Len, k}}, out...)
		if last.Len == 0 {
			f = f[:len(f)-1]
		}
		n -= k
	}
	*free = f
	return out, true
}

func blockList(es []AGExtent) []uint32 {
	var out []uint32
	for _, e := range es {
		for b := e.Bno; b < e.Bno+e.Len; b++ {
			out = append(out, b)
		}
	}
	return out
}

// MergeRmaps sorts reverse mappings by key and merges neighbours that
// continue each other (same owner and flags, adjacent blocks and, for
// file data, adjacent offsets), as the kernel keeps them.
func MergeRmaps(rs []ondisk.RmapRec) []ondisk.RmapRec {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b ondisk.RmapRec) int { return a.LowKey().Compare(b.LowKey()) })
	out := rs[:0]
	for _, r := range rs {
		if k := len(out); k > 0 {
			l := &out[k-1]
			if l.Owner == r.Owner && l.AttrFork == r.AttrFork && l.BmbtBlock == r.BmbtBlock && l.Unwritten == r.Unwritten &&
				l.StartBlock+l.BlockCount == r.StartBlock &&
				(ondisk.RmapNonInodeOwner(r.Owner) || r.BmbtBlock || l.Offset+uint64(l.BlockCount) == r.Offset) {
				l.BlockCount += r.BlockCount
				continue
			}
		}
		out = append(out, r)
	}
	return out
}
