package pack

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"xfskit/ondisk"
)

// Xattr is one extended attribute as XFS stores it: a namespace, a name
// without the namespace prefix, and a value.
type Xattr struct {
	NS    ondisk.AttrNamespace
	Name  []byte
	Value []byte
}

// XattrFromLinux converts an attribute as Linux lists it ("user.x",
// "trusted.x", "security.x", "system.posix_acl_access",
// "system.posix_acl_default") to the form XFS stores: ACLs become the
// trusted SGI_ACL_FILE / SGI_ACL_DEFAULT attributes with the value in
// XFS's ACL format.
func XattrFromLinux(name string, value []byte) (Xattr, error) {
	prefix, rest, ok := strings.Cut(name, ".")
	if !ok || rest == "" {
		return Xattr{}, fmt.Errorf("xattr %q: no namespace prefix or empty name", name)
	}
	switch prefix {
	case "user":
		return Xattr{NS: ondisk.NSUser, Name: []byte(rest), Value: value}, nil
	case "trusted":
		return Xattr{NS: ondisk.NSTrusted, Name: []byte(rest), Value: value}, nil
	case "security":
		return Xattr{NS: ondisk.NSSecurity, Name: []byte(rest), Value: value}, nil
	case "system":
		var stored string
		switch rest {
		case "posix_acl_access":
			stored = ondisk.SGIACLFile
		case "posix_acl_default":
			stored = ondisk.SGIACLDefault
		default:
			return Xattr{}, fmt.Errorf("xattr %q: XFS cannot store this system attribute", name)
		}
		v, err := ACLToXFS(value)
		if err != nil {
			return Xattr{}, fmt.Errorf("xattr %q: %w", name, err)
		}
		return Xattr{NS: ondisk.NSTrusted, Name: []byte(stored), Value: v}, nil
	}
	return Xattr{}, fmt.Errorf("xattr %q: namespace %q is not stored by XFS", name, prefix)
}

// ACLToXFS converts a POSIX ACL from the Linux xattr format to XFS's
// on-disk format, with undefined ids for entries naming no user or group
// as the kernel writes them.
func ACLToXFS(value []byte) ([]byte, error) {
	ents, err := ondisk.DecodePosixACLXattr(value)
	if err != nil {
		return nil, err
	}
	for i := range ents {
		switch ents[i].Tag {
		case ondisk.ACLUser, ondisk.ACLGroup:
		case ondisk.ACLUserObj, ondisk.ACLGroupObj, ondisk.ACLMask, ondisk.ACLOther:
			ents[i].ID = ondisk.ACLUndefinedID
		default:
			return nil, fmt.Errorf("ACL entry %d has unknown tag 0x%x", i, ents[i].Tag)
		}
	}
	return ondisk.EncodeXFSACL(ents), nil
}

// attrEnt is an attribute being placed.
type attrEnt struct {
	flags uint8 // namespace bits (plus AttrLocal in leaves)
	name  []byte
	value []byte
	hash  uint32
	idx   int // input order, to keep sorting stable
}

func (p *Packer) prepareAttrs(in *Inode) ([]attrEnt, error) {
	if len(in.Xattrs) == 0 {
		return nil, nil
	}
	out := make([]attrEnt, len(in.Xattrs))
	seen := make(map[string]struct{}, len(in.Xattrs))
	for i, x := range in.Xattrs {
		if !x.NS.Valid() || x.NS == ondisk.NSParent {
			return nil, fmt.Errorf("%s: xattr %q: unsupported namespace 0x%x", where(in.Ino), x.Name, uint8(x.NS))
		}
		if len(x.Name) == 0 || len(x.Name) > ondisk.AttrMaxNameLen {
			return nil, fmt.Errorf("%s: xattr %s: name of %d bytes (1..%d allowed)", where(in.Ino), ondisk.LinuxXattrName(x.NS, x.Name), len(x.Name), ondisk.AttrMaxNameLen)
		}
		if len(x.Value) > ondisk.AttrMaxValueSize {
			return nil, fmt.Errorf("%s: xattr %s: value of %d bytes exceeds %d", where(in.Ino), ondisk.LinuxXattrName(x.NS, x.Name), len(x.Value), ondisk.AttrMaxValueSize)
		}
		key := string([]byte{uint8(x.NS)}) + string(x.Name)
		if _, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s: duplicate xattr %s", where(in.Ino), ondisk.LinuxXattrName(x.NS, x.Name))
		}
		seen[key] = struct{}{}
		out[i] = attrEnt{flags: uint8(x.NS), name: x.Name, value: x.Value, hash: ondisk.DAHash(x.Name), idx: i}
	}
	return out, nil
}

// attrShortform encodes the attributes in the shortform layout, or
// reports that some name or value is too long for it.
func (p *Packer) attrShortform(attrs []attrEnt) ([]byte, bool) {
	if len(attrs) > 255 {
		return nil, false
	}
	sf := ondisk.AttrSF{Entries: make([]ondisk.AttrSFEntry, len(attrs))}
	for i, a := range attrs {
		// XFS_ATTR_SF_ENTSIZE_MAX: both lengths must stay below 255.
		if len(a.name) >= 255 || len(a.value) >= 255 {
			return nil, false
		}
		sf.Entries[i] = ondisk.AttrSFEntry{Flags: a.flags, Name: a.name, Value: a.value}
	}
	n := sf.EncodedSize()
	if n > p.lit {
		return nil, false
	}
	buf := make([]byte, n)
	if _, err := sf.Encode(buf); err != nil {
		return nil, false
	}
	return buf, true
}

// attrLocal reports whether a value is stored inside the leaf
// (xfs_attr_leaf_newentsize) and the size of the name struct.
func (p *Packer) attrLocal(a *attrEnt) (bool, int) {
	sz := ondisk.AttrLeafEntSizeLocal(len(a.name), len(a.value))
	if sz < p.bs/2+p.bs/4 {
		return true, sz
	}
	return false, ondisk.AttrLeafEntSizeRemote(len(a.name))
}

// buildAttrBlocks lays the attributes out in one leaf block, or in leaves
// under a da-btree, with values too large for a leaf in remote blocks.
func (p *Packer) buildAttrBlocks(ino uint64, attrs []attrEnt, out *forkContent) error {
	ents := slices.Clone(attrs)
	slices.SortStableFunc(ents, func(a, b attrEnt) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.idx, b.idx))
	})
	type placed struct {
		attrEnt
		local bool
		size  int
		blk   uint32 // first remote block
	}
	pl := make([]placed, len(ents))
	// Greedy leaf fill in hash order.
	var leaves [][2]int
	room := p.bs - ondisk.Attr3LeafHdrSize
	start, used := 0, 0
	for i := range ents {
		local, sz := p.attrLocal(&ents[i])
		pl[i] = placed{attrEnt: ents[i], local: local, size: sz}
		need := ondisk.AttrLeafEntrySize + sz
		if used+need > room && i > start {
			leaves = append(leaves, [2]int{start, i})
			start, used = i, 0
		}
		used += need
	}
	leaves = append(leaves, [2]int{start, len(ents)})

	var tree *daTree
	next := uint64(1) // first logical block after the leaf/node blocks
	leafDA := func(i int) uint64 { return 0 }
	if len(leaves) > 1 {
		tree = newDATree(0, 1, len(leaves), ondisk.DA3NodeMaxEntries(p.bs))
		next = uint64(tree.blockCount())
		leafDA = tree.leafDA
	}
	var rmt []lblock
	for i := range pl {
		if pl[i].local {
			continue
		}
		pl[i].blk = uint32(next)
		val := pl[i].value
		nb := ondisk.AttrRmtBlocks(p.bs, len(val))
		per := p.bs - ondisk.Attr3RmtHdrSize
		for b := 0; b < nb; b++ {
			piece := val[b*per : min((b+1)*per, len(val))]
			off := uint32(b * per)
			rmt = append(rmt, lblock{off: next, n: 1, fill: func(buf []byte, daddr uint64) error {
				h := ondisk.Attr3RmtHdr{Offset: off, UUID: p.uuid, Owner: ino, Blkno: daddr}
				return ondisk.EncodeAttr3Rmt(buf, &h, piece)
			}})
			next++
		}
	}

	leafBlock := func(i int, forw, back uint32) lblock {
		g := leaves[i]
		return lblock{off: leafDA(i), n: 1, fill: func(buf []byte, daddr uint64) error {
			l := &ondisk.Attr3Leaf{}
			l.Hdr.Info = ondisk.DA3BlkInfo{Magic: ondisk.Attr3LeafMagic, Forw: forw, Back: back, Blkno: daddr, UUID: p.uuid, Owner: ino}
			nameEnd := len(buf)
			usedBytes := 0
			for _, e := range pl[g[0]:g[1]] {
				nameEnd -= e.size
				usedBytes += e.size
				le := ondisk.AttrLeafEntry{Hashval: e.hash, NameIdx: uint16(nameEnd), Flags: e.flags, Name: e.name}
				if e.local {
					le.Flags |= ondisk.AttrLocal
					le.Value = e.value
					le.ValueLen = uint32(len(e.value))
				} else {
					le.ValueBlk, le.ValueLen = e.blk, uint32(len(e.value))
				}
				l.Entries = append(l.Entries, le)
			}
			base := ondisk.Attr3LeafHdrSize + len(l.Entries)*ondisk.AttrLeafEntrySize
			l.Hdr.UsedBytes = uint16(usedBytes)
			l.Hdr.FirstUsed = uint32(nameEnd)
			l.Hdr.FreeMap[0] = ondisk.AttrLeafMap{Base: uint16(base), Size: uint16(nameEnd - base)}
			return l.Encode(buf)
		}}
	}
	var blocks []lblock
	if tree == nil {
		blocks = append(blocks, leafBlock(0, 0, 0))
	} else {
		children := make([]daChild, len(leaves))
		for i, g := range leaves {
			var back, forw uint32
			if i > 0 {
				back = uint32(tree.leafDA(i - 1))
			}
			if i+1 < len(leaves) {
				forw = uint32(tree.leafDA(i + 1))
			}
			tree.leaves = append(tree.leaves, leafBlock(i, forw, back))
			children[i] = daChild{hash: pl[g[1]-1].hash, da: tree.leafDA(i)}
		}
		blocks = tree.blocks(children, 1, ino, p.uuid)
	}
	blocks = append(blocks, rmt...)
	ext, n, err := p.place(ino, "attribute", p.inodeFSB(ino), blocks)
	out.ext, out.blocks = ext, n
	return err
}
