package check

import "xfskit/ondisk"

// checkUnlinkedLists follows every AGI unlinked list (Options.UnlinkedLists):
// each member must be an allocated inode without links, hashed to its
// bucket (AG inode number modulo the bucket count), and the list must end;
// an inode whose next_unlinked is set must be on a list.
func (c *checker) checkUnlinkedLists() error {
	if !c.opts.UnlinkedLists {
		return nil
	}
	sb := c.sb
	for agno := range c.ags {
		agi := c.ags[agno].agi
		if agi == nil {
			continue
		}
		hdr := int64(sb.AGToFSB(uint32(agno), 0))
		for bucket, agino := range agi.Unlinked {
			// A list longer than the inodes there are has a loop.
			for n := 0; agino != ondisk.NullAGIno; n++ {
				ino := sb.AGInoToIno(uint32(agno), agino)
				info := c.inode(ino)
				switch {
				case n > len(c.infos):
					c.r.agf(uint32(agno), "AGI", hdr, "unlinked bucket %d: the list loops", bucket)
				case info == nil || !info.ok:
					c.r.agf(uint32(agno), "AGI", hdr, "unlinked bucket %d holds inode %d, which is not an allocated, readable inode", bucket, ino)
				case int(agino%uint32(len(agi.Unlinked))) != bucket:
					c.r.inof(ino, "inode", "on unlinked bucket %d, but AG inode %d hashes to bucket %d", bucket, agino, agino%uint32(len(agi.Unlinked)))
				case info.onList:
					c.r.inof(ino, "inode", "on unlinked bucket %d twice, or on two lists", bucket)
				case info.nlink != 0:
					c.r.inof(ino, "inode", "on unlinked bucket %d with %d links", bucket, info.nlink)
				default:
					info.onList = true
					agino = info.nextUnlinked
					continue
				}
				break
			}
		}
	}
	for i, ino := range c.order {
		if t := &c.infos[i]; t.ok && t.nextUnlinked != ondisk.NullAGIno && !t.onList {
			c.r.inof(ino, "inode", "next_unlinked is %d, but the inode is on no unlinked list", t.nextUnlinked)
		}
	}
	return nil
}
