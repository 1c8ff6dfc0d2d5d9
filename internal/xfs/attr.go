package xfs

import (
	"bytes"
	"fmt"
	"syscall"

	"xfskit/ondisk"
)

// Xattr is one extended attribute as stored: its namespace (user, trusted,
// security; ondisk.NSParent for parent pointers), raw name and value.
// POSIX ACLs appear under their stored trusted names SGI_ACL_FILE and
// SGI_ACL_DEFAULT in XFS's ACL format; see ondisk.LinuxACLName and
// ondisk.PosixACLXattr for the Linux view.
type Xattr struct {
	Namespace ondisk.AttrNamespace
	Name      []byte
	Value     []byte
}

// FullName is the Linux name, e.g. "user.comment".
func (x Xattr) FullName() string { return ondisk.LinuxXattrName(x.Namespace, x.Name) }

// ListXattrs returns every complete attribute of an inode with its value,
// in on-disk order (shortform order, or leaf blocks in hash order).
func (f *FS) ListXattrs(ip *Inode) ([]Xattr, error) {
	var out []Xattr
	err := f.WalkXattrs(ip, func(x Xattr) error {
		x.Name, x.Value = bytes.Clone(x.Name), bytes.Clone(x.Value)
		out = append(out, x)
		return nil
	})
	return out, err
}

// WalkXattrs calls fn for each complete attribute, one leaf block at a
// time; Name and Value may alias block buffers and are valid only during
// the call. Every block is verified, remote values block by block. An
// error from fn stops the walk and is returned as is.
func (f *FS) WalkXattrs(ip *Inode, fn func(Xattr) error) error {
	where := fmt.Sprintf("inode %d", ip.Ino)
	if ip.ForkOff == 0 || ip.AttrFork == nil {
		return nil
	}
	switch ip.AFormat {
	case ondisk.FmtLocal:
		sf, err := ondisk.VerifyAttrSF(ip.AttrFork, where)
		if err != nil {
			return err
		}
		for _, e := range sf.Entries {
			if err := fn(Xattr{ondisk.AttrNamespaceOf(e.Flags), e.Name, e.Value}); err != nil {
				return err
			}
		}
		return nil
	case ondisk.FmtExtents, ondisk.FmtBtree:
	default:
		return ondisk.Corrupt("attr fork", where, "aformat", "%s format", ondisk.FormatName(ip.AFormat))
	}
	a, err := f.newAttrReader(ip)
	if err != nil || a == nil {
		return err
	}
	blk, err := a.firstLeaf()
	if err != nil {
		return err
	}
	var fnErr error
	err = a.leaves(blk, func(l *ondisk.Attr3Leaf, _ int) (bool, error) {
		for _, e := range l.Entries {
			if e.Flags&ondisk.AttrIncomplete != 0 {
				continue
			}
			v := e.Value
			if !e.IsLocal() {
				if v, err = a.remote(e); err != nil {
					return false, err
				}
			}
			if err := fn(Xattr{ondisk.AttrNamespaceOf(e.Flags), e.Name, v}); err != nil {
				fnErr = err
				return false, err
			}
		}
		return true, nil
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// GetXattr returns the value of one attribute, found through the hash
// index of leaf and node attribute forks. A missing attribute gives an
// error wrapping syscall.ENODATA, as getxattr(2) reports.
func (f *FS) GetXattr(ip *Inode, ns ondisk.AttrNamespace, name []byte) ([]byte, error) {
	v, _, err := f.getXattr(ip, ns, name)
	return v, err
}

// attrLookupStats counts leaf and node blocks a lookup read (remote value
// blocks excluded), for tests.
type attrLookupStats struct{ blocks int }

func (f *FS) getXattr(ip *Inode, ns ondisk.AttrNamespace, name []byte) ([]byte, attrLookupStats, error) {
	var st attrLookupStats
	where := fmt.Sprintf("inode %d", ip.Ino)
	missing := func() ([]byte, attrLookupStats, error) {
		return nil, st, fmt.Errorf("%s: no attribute %s: %w", where, ondisk.LinuxXattrName(ns, name), syscall.ENODATA)
	}
	if ip.ForkOff == 0 || ip.AttrFork == nil {
		return missing()
	}
	switch ip.AFormat {
	case ondisk.FmtLocal:
		sf, err := ondisk.VerifyAttrSF(ip.AttrFork, where)
		if err != nil {
			return nil, st, err
		}
		for _, e := range sf.Entries {
			if ondisk.AttrNamespaceOf(e.Flags) == ns && bytes.Equal(e.Name, name) {
				return bytes.Clone(e.Value), st, nil
			}
		}
		return missing()
	case ondisk.FmtExtents, ondisk.FmtBtree:
	default:
		return nil, st, ondisk.Corrupt("attr fork", where, "aformat", "%s format", ondisk.FormatName(ip.AFormat))
	}
	a, err := f.newAttrReader(ip)
	if err != nil {
		return nil, st, err
	}
	if a == nil {
		return missing()
	}
	hash := ondisk.DAHash(name)
	blk, err := a.descend(hash)
	st.blocks = a.reads
	if err != nil {
		return nil, st, err
	}
	var val []byte
	found := false
	err = a.leaves(blk, func(l *ondisk.Attr3Leaf, _ int) (bool, error) {
		i := l.Lookup(hash)
		for ; i < len(l.Entries) && l.Entries[i].Hashval == hash; i++ {
			e := l.Entries[i]
			if e.Flags&ondisk.AttrIncomplete != 0 || ondisk.AttrNamespaceOf(e.Flags) != ns || !bytes.Equal(e.Name, name) {
				continue
			}
			found = true
			if e.IsLocal() {
				val = bytes.Clone(e.Value)
				return false, nil
			}
			val, err = a.remote(e)
			return false, err
		}
		// Only a run of equal hashes reaching the end continues next door.
		return i == len(l.Entries), nil
	})
	st.blocks = a.reads
	if err != nil {
		return nil, st, err
	}
	if !found {
		return missing()
	}
	return val, st, nil
}

// attrReader reads the da-btree blocks of one inode's attr fork.
type attrReader struct {
	fs    *FS
	ip    *Inode
	m     *forkMap
	where string
	reads int
}

// newAttrReader maps the attr fork; nil without blocks.
func (f *FS) newAttrReader(ip *Inode) (*attrReader, error) {
	m, err := f.newForkMap(ip, true)
	if err != nil {
		return nil, err
	}
	if len(m.ext) == 0 {
		return nil, nil
	}
	return &attrReader{fs: f, ip: ip, m: m, where: fmt.Sprintf("inode %d", ip.Ino)}, nil
}

func (a *attrReader) blockWhere(blk uint64) string {
	return fmt.Sprintf("%s attr block %d", a.where, blk)
}

func (a *attrReader) read(blk uint64) ([]byte, uint64, error) {
	buf, daddr, err := a.fs.readLogical(a.m, blk, 1, "attr fork")
	if err != nil {
		return nil, 0, withWhereErr(err, a.blockWhere(blk))
	}
	a.reads++
	return buf, daddr, nil
}

// descend walks from the root (block 0) to the leaf that may hold hash:
// at each node the first key >= hash. Without a node the root is the leaf.
func (a *attrReader) descend(hash uint32) (uint64, error) {
	blk := uint64(0)
	level := -1
	for depth := 0; ; depth++ {
		buf, daddr, err := a.read(blk)
		if err != nil {
			return 0, err
		}
		if ondisk.DAMagic(buf) != ondisk.DA3NodeMagic {
			if level > 1 {
				return 0, ondisk.Corrupt("da3 node block", a.blockWhere(blk), "level", "level-%d node points at a leaf", level)
			}
			a.reads-- // counted once, when the leaf walk reads it again
			return blk, nil
		}
		n, err := ondisk.VerifyDA3Node(buf, a.fs.SB.MetaUUIDOrUUID(), daddr, a.ip.Ino, a.blockWhere(blk))
		if err != nil {
			return 0, err
		}
		a.fs.noteLSN(a.ip.Ino, "attr node block", daddr, n.Info.LSN)
		if level >= 0 && int(n.Level) != level-1 || depth >= ondisk.DANodeMaxDepth {
			return 0, ondisk.Corrupt("da3 node block", a.blockWhere(blk), "level", "level %d below a level-%d node (depth %d)", n.Level, level, depth)
		}
		level = int(n.Level)
		blk = uint64(n.Entries[n.Lookup(hash)].Before)
	}
}

// firstLeaf descends the leftmost path.
func (a *attrReader) firstLeaf() (uint64, error) { return a.descend(0) }

// leaves verifies leaf blk and its forward siblings in turn, calling fn
// with each until fn returns false or the chain ends; back links must
// match and the chain may not revisit a block.
func (a *attrReader) leaves(blk uint64, fn func(l *ondisk.Attr3Leaf, idx int) (bool, error)) error {
	seen := map[uint64]bool{}
	prev := uint64(0)
	for idx := 0; ; idx++ {
		if seen[blk] {
			return ondisk.Corrupt("attr3 leaf block", a.blockWhere(blk), "forw", "leaf chain loops back to block %d", blk)
		}
		seen[blk] = true
		buf, daddr, err := a.read(blk)
		if err != nil {
			return err
		}
		l, err := ondisk.VerifyAttr3Leaf(buf, a.fs.SB.MetaUUIDOrUUID(), daddr, a.ip.Ino, a.blockWhere(blk))
		if err != nil {
			return err
		}
		a.fs.noteLSN(a.ip.Ino, "attr leaf block", daddr, l.Hdr.Info.LSN)
		if idx > 0 && uint64(l.Hdr.Info.Back) != prev {
			return ondisk.Corrupt("attr3 leaf block", a.blockWhere(blk), "back", "%d, but reached from block %d", l.Hdr.Info.Back, prev)
		}
		more, err := fn(l, idx)
		if err != nil || !more || l.Hdr.Info.Forw == 0 {
			return err
		}
		prev, blk = blk, uint64(l.Hdr.Info.Forw)
	}
}

// remote reads a remote value: AttrRmtBlocks filesystem blocks from
// ValueBlk, each with a header whose offset and length continue the value.
func (a *attrReader) remote(e ondisk.AttrLeafEntry) ([]byte, error) {
	sb := a.fs.SB
	bs := int(sb.BlockSize)
	vlen := int(e.ValueLen)
	n := ondisk.AttrRmtBlocks(bs, vlen)
	if vlen > ondisk.AttrMaxValueSize || n == 0 && vlen > 0 {
		return nil, ondisk.Corrupt("attr3 leaf block", a.where, "valuelen", "remote value %q of %d bytes", e.Name, vlen)
	}
	val := make([]byte, 0, vlen)
	pieces, err := a.m.pieces(uint64(e.ValueBlk), uint64(n))
	if err != nil {
		return nil, ondisk.Corrupt("attr fork", a.where, "bmap", "remote value %q: %v", e.Name, err)
	}
	lblk := uint64(e.ValueBlk)
	for _, p := range pieces {
		buf, err := a.fs.ReadFSB(p.fsb, uint32(p.n))
		if err != nil {
			return nil, err
		}
		for i := uint64(0); i < p.n; i++ {
			blk := buf[i*uint64(bs) : (i+1)*uint64(bs)]
			bw := a.blockWhere(lblk)
			h, payload, err := ondisk.VerifyAttr3Rmt(blk, sb.MetaUUIDOrUUID(), sb.FSBToDaddr(p.fsb+i), a.ip.Ino, bw)
			if err != nil {
				return nil, err
			}
			a.fs.noteLSN(a.ip.Ino, "remote attr value block", sb.FSBToDaddr(p.fsb+i), h.LSN)
			want := min(vlen-len(val), bs-ondisk.Attr3RmtHdrSize)
			if int(h.Offset) != len(val) || int(h.Bytes) != want {
				return nil, ondisk.Corrupt("attr3 remote value block", bw, "offset", "holds %d bytes at value offset %d; value %q expects %d at %d", h.Bytes, h.Offset, e.Name, want, len(val))
			}
			val = append(val, payload...)
			lblk++
		}
	}
	return val, nil
}

// ErrNoXattr is the errno a missing attribute wraps.
const ErrNoXattr = syscall.ENODATA
