package check

// prefetchBudget caps how much metadata is hinted ahead, so a huge image
// does not push the page cache around; beyond it reads happen on demand.
const prefetchBudget = 256 << 20

// prefetchInodeChunks hints the kernel to read every inode chunk the inode
// B-trees list, merged into runs, so the inode walk finds them in memory
// instead of waiting on one read at a time.
func (c *checker) prefetchInodeChunks() {
	sb := c.sb
	bs := int64(sb.BlockSize)
	for agno := range c.ags {
		var start, end uint32 // current run of AG blocks [start, end)
		flush := func() {
			if end > start && c.prefetched < prefetchBudget {
				n := int64(end-start) * bs
				c.fs.Prefetch(sb.AGBToDaddr(uint32(agno), start), n)
				c.prefetched += n
			}
		}
		for _, rec := range c.ags[agno].inobt {
			for _, run := range rec.PresentRuns() {
				b0, _ := sb.AGInoToAGB(rec.StartIno + uint32(run[0]))
				b1, _ := sb.AGInoToAGB(rec.StartIno + uint32(run[1]) - 1)
				if b0 > end+8 || end == 0 { // small gaps are cheaper read than skipped
					flush()
					start = b0
				}
				end = max(end, b1+1)
			}
		}
		flush()
	}
}

// prefetchExtent hints that a directory's blocks will be read soon.
func (c *checker) prefetchExtent(fsb uint64, blocks uint64) {
	n := int64(blocks) << c.sb.BlockLog
	if c.prefetched+n > 2*prefetchBudget {
		return
	}
	c.prefetched += n
	c.fs.Prefetch(c.sb.FSBToDaddr(fsb), n)
}
