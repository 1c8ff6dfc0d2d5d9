package check

import (
	"errors"
	"fmt"
	"sort"

	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// agInfo is what the AG phase learns and later phases cross-check.
type agInfo struct {
	agf    *ondisk.AGF
	agi    *ondisk.AGI
	inobt  []ondisk.InobtRec // in startino order
	rmaps  []ondisk.RmapRec
	refcs  []ondisk.RefcountRec
	freeOK bool // free space trees were readable
	// non-root blocks of bnobt+cntbt(+rmapbt): what agf_btreeblks counts
	btreeBlocks uint64
}

// checkAGs verifies the headers and every B-tree of each AG and records
// which blocks they claim. AGs are independent, so they run in parallel.
func (c *checker) checkAGs() error {
	c.ags = make([]agInfo, c.sb.AGCount)
	return c.parallelAGs(func(agno uint32) error { return c.checkAG(agno) })
}

// report turns a verifier/walk error into a finding; I/O errors abort.
func (c *checker) reportErr(agno uint32, block int64, err error) error {
	if err == nil {
		return nil
	}
	if isIOError(err) {
		return err
	}
	c.r.fromErr(int64(agno), 0, block, err)
	return nil
}

func (c *checker) checkAG(agno uint32) error {
	sb := c.sb
	info := &c.ags[agno]
	space := &c.space[agno]
	hdrBlock := int64(sb.AGToFSB(agno, 0))

	agf, err := c.fs.AGF(agno)
	if err := c.reportErr(agno, hdrBlock, err); err != nil {
		return err
	}
	agi, err := c.fs.AGI(agno)
	if err := c.reportErr(agno, hdrBlock, err); err != nil {
		return err
	}
	agfl, err := c.fs.AGFL(agno)
	if err := c.reportErr(agno, hdrBlock, err); err != nil {
		return err
	}
	if agf != nil && agf.Magic == ondisk.AGFMagic {
		info.agf = agf
		if c.lsnAhead(agf.LSN) {
			c.r.agf(agno, "AGF", hdrBlock, "LSN %s is ahead of the log head %s", lsnString(agf.LSN), c.headLSN)
		}
	}
	if agi != nil && agi.Magic == ondisk.AGIMagic {
		info.agi = agi
		if c.lsnAhead(agi.LSN) {
			c.r.agf(agno, "AGI", hdrBlock, "LSN %s is ahead of the log head %s", lsnString(agi.LSN), c.headLSN)
		}
	}
	if agfl != nil && c.lsnAhead(agfl.LSN) {
		c.r.agf(agno, "AGFL", hdrBlock, "LSN %s is ahead of the log head %s", lsnString(agfl.LSN), c.headLSN)
	}

	if info.agf != nil && agfl != nil {
		fl, err := agfl.FreeList(agf, agno, sb)
		if err := c.reportErr(agno, hdrBlock, err); err != nil {
			return err
		}
		for _, b := range fl {
			space.add(use{start: b, length: 1, kind: ownFreelist})
		}
	}
	if info.agf != nil {
		if err := c.checkFreeSpace(agno, info); err != nil {
			return err
		}
		if sb.HasRmapbt() {
			if err := c.collectRmap(agno, info); err != nil {
				return err
			}
		}
		c.freeBlocks.Add(info.btreeBlocks)
		if info.freeOK && uint64(agf.BtreeBlks) != info.btreeBlocks {
			c.r.agf(agno, "AGF", hdrBlock, "btreeblks %d, but the free space%s trees have %d blocks besides their roots", agf.BtreeBlks, map[bool]string{true: " and rmap", false: ""}[sb.HasRmapbt()], info.btreeBlocks)
		}
		if sb.HasReflink() {
			if err := c.collectRefcount(agno, info); err != nil {
				return err
			}
		}
	}
	if info.agi != nil {
		// The kernel empties the unlinked lists when it mounts; with a clean
		// log, an inode left on one was lost (open-unlinked at a crash).
		for i, ino := range info.agi.Unlinked {
			if ino != ondisk.NullAGIno && !c.opts.UnlinkedLists {
				c.r.agf(agno, "AGI", hdrBlock, "unlinked bucket %d holds AG inode %d on a filesystem with a clean log", i, ino)
			}
		}
		if err := c.checkInodeBtrees(agno, info); err != nil {
			return err
		}
	}
	return nil
}

// walk walks one AG B-tree, claiming its blocks for kind and reporting every
// corruption without stopping. It returns the number of blocks in the tree.
func (c *checker) walk(agno, root uint32, levels int, geom ondisk.BtreeGeometry, kind ownerKind, leaf func(b *xfs.BtreeBlock) error) (blocks uint32, err error) {
	if levels == 0 {
		return 0, nil
	}
	err = c.fs.WalkAGBtreeReport(agno, root, levels, geom, func(b *xfs.BtreeBlock) error {
		blocks++
		c.space[agno].add(use{start: b.AGBno, length: 1, kind: kind})
		if c.lsnAhead(b.Header.LSN) {
			c.r.agf(agno, ondisk.BtreeName(geom.Magic)+" block", int64(c.sb.AGToFSB(agno, b.AGBno)), "LSN %s is ahead of the log head %s", lsnString(b.Header.LSN), c.headLSN)
		}
		if b.IsLeaf() && leaf != nil {
			return leaf(b)
		}
		return nil
	}, func(err error) error {
		var ce *ondisk.CorruptError
		block := int64(-1)
		if errors.As(err, &ce) {
			block = -1
		}
		c.r.fromErr(int64(agno), 0, block, err)
		return nil
	})
	if err != nil && !isIOError(err) {
		c.r.fromErr(int64(agno), 0, -1, err)
		err = nil
	}
	return blocks, err
}

func (c *checker) checkFreeSpace(agno uint32, info *agInfo) error {
	agf := info.agf
	var bno, cnt []ondisk.AllocRec
	collect := func(dst *[]ondisk.AllocRec) func(b *xfs.BtreeBlock) error {
		return func(b *xfs.BtreeBlock) error {
			for i := 0; i < b.NumRecs(); i++ {
				r, err := ondisk.DecodeAllocRec(b.Rec(i))
				if err != nil {
					return err
				}
				if r.BlockCount == 0 {
					c.r.agf(agno, ondisk.BtreeName(b.Geom.Magic)+" record", int64(c.sb.AGToFSB(agno, b.AGBno)), "record %d has zero length", i)
					continue
				}
				*dst = append(*dst, r)
			}
			return nil
		}
	}
	var bnoBlocks, cntBlocks uint32
	bnoBlocks, err := c.walk(agno, agf.BnoRoot, int(agf.BnoLevel), ondisk.BnobtGeom, ownBnobt, collect(&bno))
	if err != nil {
		return err
	}
	cntBlocks, err = c.walk(agno, agf.CntRoot, int(agf.CntLevel), ondisk.CntbtGeom, ownCntbt, collect(&cnt))
	if err != nil {
		return err
	}
	var free, longest uint64
	for _, r := range bno {
		c.space[agno].add(use{start: r.StartBlock, length: r.BlockCount, kind: ownFree})
		free += uint64(r.BlockCount)
		longest = max(longest, uint64(r.BlockCount))
	}
	// The by-size tree must index exactly the same extents.
	key := func(r ondisk.AllocRec) uint64 { return uint64(r.StartBlock)<<32 | uint64(r.BlockCount) }
	a := make([]uint64, len(bno))
	for i, r := range bno {
		a[i] = key(r)
	}
	b := make([]uint64, len(cnt))
	for i, r := range cnt {
		b[i] = key(r)
	}
	sort.Slice(a, func(i, j int) bool { return a[i] < a[j] })
	sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
	if d := firstDiff(a, b); d != "" {
		c.r.agf(agno, "cntbt", int64(c.sb.AGToFSB(agno, agf.CntRoot)), "by-size tree (%d extents) disagrees with by-block tree (%d extents): %s", len(cnt), len(bno), d)
	}
	hdr := int64(c.sb.AGToFSB(agno, 0))
	if uint64(agf.FreeBlks) != free {
		c.r.agf(agno, "AGF", hdr, "freeblks %d, but the free space trees hold %d blocks", agf.FreeBlks, free)
	}
	if uint64(agf.Longest) != longest {
		c.r.agf(agno, "AGF", hdr, "longest free extent %d, but the trees' longest is %d", agf.Longest, longest)
	}
	// The superblock counts free extents, the free list and the
	// non-root free space/rmap tree blocks as available (fdblocks).
	c.freeBlocks.Add(free + uint64(agf.FLCount))
	info.freeOK = true
	info.btreeBlocks = uint64(bnoBlocks) + uint64(cntBlocks) - 2
	return nil
}

func firstDiff(a, b []uint64) string {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j >= len(b) || i < len(a) && a[i] < b[j]:
			return fmt.Sprintf("extent %d+%d only in the by-block tree", a[i]>>32, uint32(a[i]))
		case i >= len(a) || b[j] < a[i]:
			return fmt.Sprintf("extent %d+%d only in the by-size tree", b[j]>>32, uint32(b[j]))
		}
		i++
		j++
	}
	return ""
}
