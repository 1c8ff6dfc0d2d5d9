package check

import (
	"context"
	"errors"
	"slices"

	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// inodeInfo is what later phases need to know of every allocated inode.
type inodeInfo struct {
	mode  uint16
	nlink uint32
	ok    bool // decoded and verified
	// refs counts directory entries naming this inode (excluding "." and
	// ".."); subdirs counts child directories (for directory link counts).
	refs    uint32
	subdirs uint32
	parent  uint64 // ".." of a directory
	reached bool
	// nextUnlinked is the inode's next_unlinked (Options.UnlinkedLists);
	// onList: an AGI unlinked list holds it.
	nextUnlinked uint32
	onList       bool
}

// checkInodes walks every allocated inode in inode order: verifies the core
// and both forks, accounts fork extents and bmbt blocks in the space map,
// and checks block counts.
func (c *checker) checkInodes() error {
	c.prefetchInodeChunks()
	err := c.fs.WalkInodes(context.Background(), func(ino uint64, raw []byte) error {
		c.prog.add(1)
		c.r.Stats.Inodes++
		c.order = append(c.order, ino)
		c.infos = append(c.infos, inodeInfo{})
		info := &c.infos[len(c.infos)-1]
		// raw is only valid during this call; directories are kept for
		// the directory phase, so they alone get a copy.
		ip, err := c.fs.DecodeInodeShared(ino, raw)
		if err != nil {
			d, derr := ondisk.DecodeDinode(raw)
			if derr == nil && d.Magic == ondisk.DinodeMagic && d.Mode == 0 {
				c.r.inof(ino, "inode", "the inode B-tree says allocated, but the inode is free (mode 0)")
				return nil
			}
			c.r.fromErr(-1, ino, -1, err)
			return nil
		}
		if ip.Mode == 0 {
			c.r.inof(ino, "inode", "the inode B-tree says allocated, but the inode is free (mode 0)")
			return nil
		}
		if c.lsnAhead(ip.LSN) {
			c.r.inof(ino, "inode", "LSN %s is ahead of the log head %s", lsnString(ip.LSN), c.headLSN)
		}
		c.checkInodeFields(ip)
		info.mode = ip.Mode
		info.nlink = ip.Links()
		info.nextUnlinked = ip.NextUnlinked
		info.ok = true
		switch {
		case ip.IsDir():
			c.r.Stats.Directories++
			c.dirs = append(c.dirs, &xfs.Inode{Dinode: ip.Dinode, Ino: ino})
			kept := c.dirs[len(c.dirs)-1]
			kept.Raw = append([]byte(nil), raw...)
			kept.DataFork, kept.AttrFork, _ = kept.Forks(kept.Raw)
		case ip.IsReg():
			c.r.Stats.Files++
		}
		if err := c.checkForks(ip); err != nil {
			return err
		}
		if ip.ForkOff != 0 {
			if _, err := c.fs.ListXattrs(ip); err != nil {
				if isIOError(err) {
					return err
				}
				c.r.fromErr(-1, ino, -1, err)
			} else if ip.AFormat != ondisk.FmtLocal {
				if err := c.checkAttrIndex(ip); err != nil {
					return err
				}
			}
		}
		if ip.IsSymlink() {
			if _, err := c.fs.Readlink(ip); err != nil {
				if isIOError(err) {
					return err
				}
				c.r.fromErr(-1, ino, -1, err)
			}
		}
		return nil
	})
	if err != nil && !isIOError(err) {
		var ce *ondisk.CorruptError
		if errors.As(err, &ce) {
			c.r.fromErr(-1, 0, -1, err)
			return nil
		}
	}
	return err
}

// checkForks walks both forks of ip, claiming their blocks.
func (c *checker) checkForks(ip *xfs.Inode) error {
	sb := c.sb
	var blocks uint64
	realtime := ip.Flags&ondisk.DiflagRealtime != 0
	for _, attr := range []bool{false, true} {
		kind := ownData
		if attr {
			kind = ownAttr
		}
		err := c.fs.WalkForkBlocks(ip, attr, func(e ondisk.Extent) error {
			if realtime && !attr {
				return nil // realtime extents live on the rt device
			}
			blocks += e.Length
			if !attr && ip.IsDir() {
				c.prefetchExtent(e.StartBlock, e.Length)
			}
			agno, agbno := sb.FSBToAG(e.StartBlock)
			if agno < sb.AGCount {
				c.claim(agno, use{start: agbno, length: uint32(e.Length), kind: kind, ino: ip.Ino, offset: e.Offset, unwritten: e.Unwritten})
			}
			return nil
		}, func(fsb uint64) {
			blocks++
			agno, agbno := sb.FSBToAG(fsb)
			if agno < sb.AGCount {
				c.claim(agno, use{start: agbno, length: 1, kind: ownBmbt, ino: ip.Ino, attrFork: attr})
			}
		})
		if err != nil {
			if isIOError(err) {
				return err
			}
			c.r.fromErr(-1, ip.Ino, -1, err)
			return nil
		}
	}
	if !realtime && ip.NBlocks != blocks {
		c.r.inof(ip.Ino, "inode", "nblocks %d, but its forks map %d blocks", ip.NBlocks, blocks)
	}
	c.r.Stats.DataBlocks += blocks
	return nil
}

// claim records a claim from the (sequential) inode phase.
func (c *checker) claim(agno uint32, u use) { c.space[agno].add(u) }

// inode returns what the inode phase learnt of allocated inode ino, or nil.
func (c *checker) inode(ino uint64) *inodeInfo {
	i, ok := slices.BinarySearch(c.order, ino)
	if !ok {
		return nil
	}
	return &c.infos[i]
}
