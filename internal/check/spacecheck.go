package check

// checkSpace sweeps each AG's claims: every block must be owned exactly once
// (shared data extents aside, when reflink is on), and shared extents must
// match the refcount B-tree.
func (c *checker) checkSpace() error {
	for _, e := range c.opts.PendingFree {
		agno, agbno := c.sb.FSBToAG(e.Start)
		if agno >= c.sb.AGCount || uint64(agbno)+uint64(e.Len) > uint64(c.sb.AGLength(agno)) || e.Len == 0 {
			c.r.agf(0, "log", -1, "unfinished extent-free intent for blocks %d+%d outside the filesystem", e.Start, e.Len)
			continue
		}
		c.space[agno].add(use{start: agbno, length: e.Len, kind: ownPendingFree})
	}
	for agno := uint32(0); agno < c.sb.AGCount; agno++ {
		if c.sb.HasRmapbt() && c.ags[agno].agf != nil {
			c.compareRmaps(agno)
		}
		shared := c.space[agno].sweep(c.r, agno, c.sb.AGLength(agno), c.sb.HasReflink(), c.sb.AGToFSB)
		if c.sb.HasReflink() && c.ags[agno].agf != nil {
			c.compareRefcounts(agno, shared)
		}
		c.space[agno].uses = nil // release memory as we go
	}
	return nil
}

// compareRefcounts checks the refcountbt's shared-extent records against
// the sharing the inode walk found.
func (c *checker) compareRefcounts(agno uint32, shared []sharedRange) {
	var recs []sharedRange
	for _, r := range c.ags[agno].refcs {
		if r.COW {
			c.r.agf(agno, "refcountbt", int64(c.sb.AGToFSB(agno, r.StartBlock)), "copy-on-write staging extent %d+%d left on an unmounted filesystem", r.StartBlock, r.BlockCount)
			continue
		}
		recs = append(recs, sharedRange{r.StartBlock, r.BlockCount, r.RefCount})
	}
	i, j := 0, 0
	for i < len(shared) || j < len(recs) {
		switch {
		case j >= len(recs) || i < len(shared) && shared[i].start < recs[j].start:
			s := shared[i]
			c.r.agf(agno, "refcountbt", int64(c.sb.AGToFSB(agno, s.start)), "blocks %d..%d are shared by %d files but have no refcount record", s.start, s.start+s.length-1, s.count)
			i++
		case i >= len(shared) || recs[j].start < shared[i].start:
			s := recs[j]
			c.r.agf(agno, "refcountbt", int64(c.sb.AGToFSB(agno, s.start)), "record %d+%d refcount %d, but no file shares those blocks", s.start, s.length, s.count)
			j++
		default:
			if shared[i] != recs[j] {
				c.r.agf(agno, "refcountbt", int64(c.sb.AGToFSB(agno, recs[j].start)), "record %d+%d refcount %d, but the files share %d+%d %d times", recs[j].start, recs[j].length, recs[j].count, shared[i].start, shared[i].length, shared[i].count)
			}
			i++
			j++
		}
	}
}

// checkCounters compares the superblock's summary counters with the totals.
func (c *checker) checkCounters() error {
	sb := c.sb
	complete := true
	for _, a := range c.ags {
		if a.agf == nil || a.agi == nil || !a.freeOK {
			complete = false
		}
	}
	if !complete {
		return nil // the AG findings already explain the damage
	}
	if got := c.inodeCount.Load(); sb.ICount != got {
		c.r.fsf("superblock", "icount %d, but the inode B-trees hold %d inodes", sb.ICount, got)
	}
	if got := c.inodeFree.Load(); sb.IFree != got {
		c.r.fsf("superblock", "ifree %d, but the inode B-trees hold %d free inodes", sb.IFree, got)
	}
	if got := c.freeBlocks.Load(); sb.FDBlocks != got {
		c.r.fsf("superblock", "fdblocks %d, but free extents, free lists and free space tree blocks add up to %d", sb.FDBlocks, got)
	}
	c.r.Stats.FreeBlocks = c.freeBlocks.Load()
	return nil
}
