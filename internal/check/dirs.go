package check

import (
	"bytes"

	"golang.org/x/sync/errgroup"

	"xfskit/internal/xfs"
	"xfskit/ondisk"
)

// dirEdge is a directory entry that names a directory: the tree's edges.
type dirGraph struct {
	children map[uint64][]uint64 // dir → inodes it names (excluding . and ..)
	dotdot   map[uint64]uint64   // dir → its ".." entry
}

// dirReaders is how many directories are read at once.
const dirReaders = 16

type dirResult struct {
	ents []xfs.DirEntry
	idx  *idxFindings
	err  error
}

// checkDirectories reads every directory (all forms), checks its entries
// against the inodes they name, then checks reachability and link counts.
func (c *checker) checkDirectories() error {
	g := dirGraph{children: map[uint64][]uint64{}, dotdot: map[uint64]uint64{}}
	sb := c.sb
	// Directory blocks are scattered: read many directories at once so the
	// device always has requests queued, then judge them in inode order.
	results := make([]dirResult, len(c.dirs))
	var g2 errgroup.Group
	g2.SetLimit(dirReaders)
	for i, ip := range c.dirs {
		g2.Go(func() error {
			ents, err := c.fs.ReadDir(ip)
			if err != nil && isIOError(err) {
				return err
			}
			var idx *idxFindings
			if err == nil && ip.Format != ondisk.FmtLocal {
				// Index checks report nothing themselves, so they can run
				// here, off the sequential path.
				if idx, err = c.dirIndex(ip); err != nil {
					return err
				}
			}
			results[i] = dirResult{ents, idx, err}
			return nil
		})
	}
	if err := g2.Wait(); err != nil {
		return err
	}
	for i, ip := range c.dirs {
		c.prog.add(1)
		dino := ip.Ino
		ents, err := results[i].ents, results[i].err
		if err != nil {
			c.r.fromErr(-1, dino, -1, err)
			c.inode(dino).ok = false // don't judge its link count
			continue
		}
		results[i].idx.report(c.r)
		results[i] = dirResult{} // release as we go
		seen := map[string]bool{}
		for _, e := range ents {
			name := string(e.Name)
			switch {
			case name == ".":
				if e.Ino != dino {
					c.r.inof(dino, "directory", "entry \".\" points to inode %d", e.Ino)
				}
				continue
			case name == "..":
				g.dotdot[dino] = e.Ino
				continue
			case len(e.Name) == 0 || bytes.IndexByte(e.Name, '/') >= 0 || bytes.IndexByte(e.Name, 0) >= 0:
				c.r.inof(dino, "directory", "entry %q has an invalid name", name)
				continue
			}
			if seen[name] {
				c.r.inof(dino, "directory", "entry %q appears twice", name)
			}
			seen[name] = true
			t := c.inode(e.Ino)
			if t == nil || !t.ok {
				if t == nil {
					c.r.inof(dino, "directory", "entry %q points to inode %d, which is not an allocated inode", name, e.Ino)
				}
				continue
			}
			if sb.HasFType() && e.Type != ondisk.DirFTypeFromMode(t.mode) {
				c.r.inof(dino, "directory", "entry %q has file type %d, but inode %d has mode %#o", name, e.Type, e.Ino, t.mode)
			}
			t.refs++
			g.children[dino] = append(g.children[dino], e.Ino)
		}
		if _, ok := g.dotdot[dino]; !ok {
			c.r.inof(dino, "directory", "no \"..\" entry")
		}
	}
	c.checkTree(&g)
	return nil
}

// checkTree checks that every inode is reachable from the root, that every
// directory has exactly one parent which its ".." names, and link counts.
func (c *checker) checkTree(g *dirGraph) {
	sb := c.sb
	root := sb.RootIno
	ri := c.inode(root)
	if ri == nil || !ri.ok || ri.mode&ondisk.ModeTypeMask != ondisk.ModeDir {
		c.r.fsf("root directory", "inode %d is not an allocated directory", root)
		return
	}
	if p := g.dotdot[root]; p != root {
		c.r.inof(root, "directory", "root's \"..\" points to inode %d", p)
	}
	parent := map[uint64]uint64{}
	ri.reached = true
	queue := []uint64{root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, ch := range g.children[d] {
			t := c.inode(ch)
			if t.mode&ondisk.ModeTypeMask == ondisk.ModeDir {
				c.inode(d).subdirs++
				if p, dup := parent[ch]; dup {
					c.r.inof(ch, "directory", "named by both directory %d and directory %d (a directory may have one parent)", p, d)
					continue
				}
				parent[ch] = d
				if dd := g.dotdot[ch]; dd != d {
					c.r.inof(ch, "directory", "\"..\" points to inode %d, but the directory is in directory %d", dd, d)
				}
			}
			if !t.reached {
				t.reached = true
				if t.mode&ondisk.ModeTypeMask == ondisk.ModeDir {
					queue = append(queue, ch)
				}
			}
		}
	}
	special := map[uint64]bool{sb.RBMIno: true, sb.RSumIno: true, sb.UQuotIno: true, sb.GQuotIno: true, sb.PQuotIno: true}
	for i, ino := range c.order {
		t := &c.infos[i]
		if !t.ok {
			continue
		}
		if !t.reached && !special[ino] {
			if !t.onList { // an unlinked list's members have no name
				c.r.inof(ino, "inode", "not reachable from the root directory (disconnected)")
			}
			continue
		}
		if special[ino] {
			continue
		}
		want := t.refs
		if t.mode&ondisk.ModeTypeMask == ondisk.ModeDir {
			want = 2 + t.subdirs
		}
		if t.nlink != want {
			c.r.inof(ino, "inode", "link count %d, but %d links were found", t.nlink, want)
		}
	}
}
