package check

import (
	"fmt"

	"xfskit/ondisk"
)

// checkSuperblocks verifies every secondary superblock and compares its
// geometry with the primary (counters in secondaries are allowed to be stale).
func (c *checker) checkSuperblocks() error {
	p := c.sb
	for ag := uint32(1); ag < p.AGCount; ag++ {
		buf, err := c.fs.ReadAGHeader(ag, 0)
		if err != nil {
			if isIOError(err) {
				return err
			}
			c.r.agf(ag, "superblock", int64(p.AGToFSB(ag, 0)), "%v", err)
			continue
		}
		s, err := ondisk.DecodeSuperblock(buf)
		if err == nil {
			err = s.Verify(buf, fmt.Sprintf("AG %d", ag))
		}
		if err != nil {
			c.r.fromErr(int64(ag), 0, int64(p.AGToFSB(ag, 0)), err)
			continue
		}
		c.checkSBFields(s, ag, buf)
		diff := func(field string, a, b uint64) {
			if a != b {
				c.r.agf(ag, "superblock", int64(p.AGToFSB(ag, 0)), "secondary %s = %d, primary has %d", field, a, b)
			}
		}
		diff("blocksize", uint64(s.BlockSize), uint64(p.BlockSize))
		diff("dblocks", s.DBlocks, p.DBlocks)
		diff("agblocks", uint64(s.AGBlocks), uint64(p.AGBlocks))
		diff("agcount", uint64(s.AGCount), uint64(p.AGCount))
		diff("logstart", s.LogStart, p.LogStart)
		diff("logblocks", uint64(s.LogBlocks), uint64(p.LogBlocks))
		diff("inodesize", uint64(s.InodeSize), uint64(p.InodeSize))
		diff("sectsize", uint64(s.SectSize), uint64(p.SectSize))
		diff("features_ro_compat", uint64(s.FeaturesROCompat), uint64(p.FeaturesROCompat))
		diff("features_incompat", uint64(s.FeaturesIncompat&^ondisk.IncompatNeedsRepair), uint64(p.FeaturesIncompat&^ondisk.IncompatNeedsRepair))
		diff("dirblklog", uint64(s.DirBlkLog), uint64(p.DirBlkLog))
		diff("inoalignmt", uint64(s.InoAlignMt), uint64(p.InoAlignMt))
		if s.UUID != p.UUID {
			c.r.agf(ag, "superblock", int64(p.AGToFSB(ag, 0)), "secondary UUID %s differs from primary %s", s.UUID, p.UUID)
		}
	}
	if buf, err := c.fs.ReadAGHeader(0, 0); err == nil {
		c.checkSBFields(p, 0, buf)
	} else if isIOError(err) {
		return err
	}
	if c.lsnAhead(p.LSN) {
		c.r.agf(0, "superblock", 0, "LSN %s is ahead of the log head %s", lsnString(p.LSN), c.headLSN)
	}
	// The header sectors of every AG are always in use.
	hdrBlocks := uint32((4*uint64(p.SectSize) + uint64(p.BlockSize) - 1) / uint64(p.BlockSize))
	for ag := uint32(0); ag < p.AGCount; ag++ {
		c.space[ag].add(use{start: 0, length: hdrBlocks, kind: ownHeaders})
	}
	if p.LogStart != 0 {
		agno, agbno := p.FSBToAG(p.LogStart)
		c.space[agno].add(use{start: agbno, length: p.LogBlocks, kind: ownLog})
	}
	return nil
}
