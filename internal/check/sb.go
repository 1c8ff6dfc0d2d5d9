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
		// The fields every copy shares (growfs refuses a primary the
		// secondaries contradict on the same list), and the size, which
		// mkfs.xfs and the kernel's growfs write into every copy.
		for _, d := range ondisk.SharedDiffs(p, s) {
			c.r.agf(ag, "superblock", int64(p.AGToFSB(ag, 0)), "secondary differs from the primary (primary/secondary): %s", d)
		}
		diff("dblocks", s.DBlocks, p.DBlocks)
		diff("agcount", uint64(s.AGCount), uint64(p.AGCount))
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
