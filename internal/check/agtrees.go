package check

import (
	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// collectRmap walks the rmapbt, claims its blocks, and keeps its records for
// the cross-check against everything the other phases found.
func (c *checker) collectRmap(agno uint32, info *agInfo) error {
	agf := info.agf
	blocks, err := c.walk(agno, agf.RmapRoot, int(agf.RmapLevel), ondisk.RmapbtGeom, ownRmapbt, func(b *xfs.BtreeBlock) error {
		for i := 0; i < b.NumRecs(); i++ {
			r, err := ondisk.DecodeRmapRec(b.Rec(i))
			if err != nil {
				return err
			}
			if err := r.Verify(c.sb.AGLength(agno), b.Where()); err != nil {
				c.r.fromErr(int64(agno), 0, int64(c.sb.AGToFSB(agno, b.AGBno)), err)
				continue
			}
			info.rmaps = append(info.rmaps, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if blocks > 0 {
		info.btreeBlocks += uint64(blocks) - 1
	}
	if agf.RmapBlocks != blocks {
		c.r.agf(agno, "AGF", int64(c.sb.AGToFSB(agno, 0)), "rmap_blocks %d, but the rmapbt has %d blocks", agf.RmapBlocks, blocks)
	}
	return nil
}

// collectRefcount walks the refcountbt and keeps its records.
func (c *checker) collectRefcount(agno uint32, info *agInfo) error {
	agf := info.agf
	blocks, err := c.walk(agno, agf.RefcountRoot, int(agf.RefcountLevel), ondisk.RefcbtGeom, ownRefcbt, func(b *xfs.BtreeBlock) error {
		for i := 0; i < b.NumRecs(); i++ {
			r, err := ondisk.DecodeRefcountRec(b.Rec(i))
			if err != nil {
				return err
			}
			if err := r.Verify(c.sb.AGLength(agno), b.Where()); err != nil {
				c.r.fromErr(int64(agno), 0, int64(c.sb.AGToFSB(agno, b.AGBno)), err)
				continue
			}
			info.refcs = append(info.refcs, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if agf.RefcountBlocks != blocks {
		c.r.agf(agno, "AGF", int64(c.sb.AGToFSB(agno, 0)), "refcount_blocks %d, but the refcountbt has %d blocks", agf.RefcountBlocks, blocks)
	}
	return nil
}

// checkInodeBtrees walks the inobt (and finobt), claims inode chunk blocks,
// and checks the AGI counters and that the finobt indexes exactly the inobt
// records with free inodes.
func (c *checker) checkInodeBtrees(agno uint32, info *agInfo) error {
	sb := c.sb
	agi := info.agi
	sparse := sb.HasSpinodes()
	hdr := int64(sb.AGToFSB(agno, 0))
	var count, free uint64
	var chunks []use
	decode := func(dst *[]ondisk.InobtRec) func(b *xfs.BtreeBlock) error {
		return func(b *xfs.BtreeBlock) error {
			for i := 0; i < b.NumRecs(); i++ {
				r, err := ondisk.DecodeInobtRec(b.Rec(i), sparse)
				if err != nil {
					return err
				}
				if err := r.Verify(sb, agno, b.Where()); err != nil {
					c.r.fromErr(int64(agno), 0, int64(sb.AGToFSB(agno, b.AGBno)), err)
					continue
				}
				*dst = append(*dst, r)
			}
			return nil
		}
	}
	iblocks, err := c.walk(agno, agi.Root, int(agi.Level), ondisk.InobtGeom, ownInobt, decode(&info.inobt))
	if err != nil {
		return err
	}
	for _, r := range info.inobt {
		count += uint64(r.Count)
		free += uint64(r.FreeCount)
		for _, run := range r.PresentRuns() {
			first := r.StartIno + uint32(run[0])
			last := r.StartIno + uint32(run[1]) - 1
			b0, _ := sb.AGInoToAGB(first)
			b1, _ := sb.AGInoToAGB(last)
			chunks = append(chunks, use{start: b0, length: b1 - b0 + 1, kind: ownInodes})
		}
	}
	for _, u := range mergeUses(chunks) {
		c.space[agno].add(u)
	}
	if uint64(agi.Count) != count {
		c.r.agf(agno, "AGI", hdr, "count %d, but the inobt records %d inodes", agi.Count, count)
	}
	if uint64(agi.FreeCount) != free {
		c.r.agf(agno, "AGI", hdr, "freecount %d, but the inobt records %d free inodes", agi.FreeCount, free)
	}
	c.inodeCount.Add(count)
	c.inodeFree.Add(free)
	if sb.HasInobtCnt() && agi.IBlocks != iblocks {
		c.r.agf(agno, "AGI", hdr, "iblocks %d, but the inobt has %d blocks", agi.IBlocks, iblocks)
	}
	if !sb.HasFinobt() {
		return nil
	}
	var fin []ondisk.InobtRec
	fblocks, err := c.walk(agno, agi.FreeRoot, int(agi.FreeLevel), ondisk.FinobtGeom, ownFinobt, decode(&fin))
	if err != nil {
		return err
	}
	if sb.HasInobtCnt() && agi.FBlocks != fblocks {
		c.r.agf(agno, "AGI", hdr, "fblocks %d, but the finobt has %d blocks", agi.FBlocks, fblocks)
	}
	j := 0
	for _, r := range info.inobt {
		if r.FreeCount == 0 {
			continue
		}
		if j >= len(fin) || fin[j].StartIno != r.StartIno {
			c.r.agf(agno, "finobt", int64(sb.AGToFSB(agno, agi.FreeRoot)), "inobt chunk at agino %d has %d free inodes but no finobt record", r.StartIno, r.FreeCount)
			continue
		}
		if fin[j] != r {
			c.r.agf(agno, "finobt", int64(sb.AGToFSB(agno, agi.FreeRoot)), "record for chunk %d differs from the inobt's (free mask %#x vs %#x, freecount %d vs %d)", r.StartIno, fin[j].Free, r.Free, fin[j].FreeCount, r.FreeCount)
		}
		j++
	}
	if extra := len(fin) - j; extra > 0 {
		c.r.agf(agno, "finobt", int64(sb.AGToFSB(agno, agi.FreeRoot)), "%d records for chunks that are full or not in the inobt", extra)
	}
	return nil
}

// mergeUses unions claims of one kind (inode chunks can share a block when
// a block holds more than 64 inodes).
func mergeUses(us []use) []use {
	if len(us) < 2 {
		return us
	}
	sortUses(us)
	out := us[:1]
	for _, u := range us[1:] {
		last := &out[len(out)-1]
		if u.start <= last.start+last.length {
			last.length = max(last.length, u.start+u.length-last.start)
			continue
		}
		out = append(out, u)
	}
	return out
}
