package check

import "xfskit/ondisk"

// checkFreeInodes reads the chunks holding free inodes and checks that each
// free inode really is free: a valid core (magic, CRC) with mode 0. The
// kernel initialises every inode of a chunk when it allocates the chunk.
func (c *checker) checkFreeInodes() error {
	sb := c.sb
	isize := int(sb.InodeSize)
	for agno := range c.ags {
		for _, rec := range c.ags[agno].inobt {
			if rec.FreeCount == 0 {
				continue
			}
			for _, run := range rec.PresentRuns() {
				first := rec.StartIno + uint32(run[0])
				last := rec.StartIno + uint32(run[1]) - 1
				b0, _ := sb.AGInoToAGB(first)
				b1, _ := sb.AGInoToAGB(last)
				buf, err := c.fs.ReadAGB(uint32(agno), b0, b1-b0+1)
				if err != nil {
					if isIOError(err) {
						return err
					}
					c.r.fromErr(int64(agno), 0, int64(sb.AGToFSB(uint32(agno), b0)), err)
					continue
				}
				base := c.sb.AGBToAGIno(b0)
				for i := run[0]; i < run[1]; i++ {
					if !rec.IsFree(i) {
						continue
					}
					agino := rec.StartIno + uint32(i)
					off := int(agino-base) * isize
					if off < 0 || off+isize > len(buf) {
						continue
					}
					c.checkFreeInode(sb.AGInoToIno(uint32(agno), agino), buf[off:off+isize])
				}
			}
		}
	}
	return nil
}

func (c *checker) checkFreeInode(ino uint64, raw []byte) {
	d, err := ondisk.DecodeDinode(raw)
	switch {
	case err != nil:
		c.r.fromErr(-1, ino, -1, err)
	case d.Magic != ondisk.DinodeMagic:
		c.r.inof(ino, "inode", "free inode has bad magic %#04x", d.Magic)
	case d.Version >= 3 && !ondisk.CRCOK(raw, ondisk.DinodeCRCOff):
		c.r.inof(ino, "inode", "free inode fails its checksum")
	case d.Mode != 0:
		c.r.inof(ino, "inode", "the inode B-tree says free, but the inode is in use (mode %#o)", d.Mode)
	}
}
