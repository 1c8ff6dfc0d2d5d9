package pack

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"xfskit/ondisk"
)

// dent is a directory entry placed in the data space.
type dent struct {
	name []byte
	ino  uint64
	ft   uint8
	db   uint32 // data block
	off  int    // byte offset in the data block
}

// DirForm names the form a directory was built in.
type DirForm int

const (
	DirShortform DirForm = iota // entries in the inode
	DirBlock                    // one block with data, leaf and tail
	DirLeaf                     // data blocks and one leaf1 block
	DirNode                     // data blocks, leafn blocks under a da-btree, free index blocks
)

func (f DirForm) String() string {
	return [...]string{"shortform", "block", "leaf", "node"}[f]
}

func (p *Packer) checkEntries(in *Inode) error {
	// Entries in strictly ascending byte order (as mkfs -p gives them)
	// cannot repeat a name, so the set of names is only built for others
	// and for case-insensitive directories.
	ci := ondisk.IsASCIICI(p.sb)
	ascending := !ci
	for i := 1; ascending && i < len(in.Entries); i++ {
		ascending = bytes.Compare(in.Entries[i-1].Name, in.Entries[i].Name) < 0
	}
	var seen map[string]struct{}
	if !ascending {
		seen = make(map[string]struct{}, len(in.Entries))
	}
	for i, e := range in.Entries {
		if !ondisk.DirNameValid(e.Name) || bytes.Equal(e.Name, []byte(".")) || bytes.Equal(e.Name, []byte("..")) {
			return fmt.Errorf("%s: directory entry %d: invalid name %q", where(in.Ino), i, e.Name)
		}
		if seen != nil {
			key := string(e.Name)
			if ci {
				key = string(foldASCIICI(e.Name))
			}
			if _, dup := seen[key]; dup {
				return fmt.Errorf("%s: duplicate directory entry %q", where(in.Ino), e.Name)
			}
			seen[key] = struct{}{}
		}
		if !p.sb.ValidIno(e.Ino) {
			return fmt.Errorf("%s: directory entry %q names invalid inode %d", where(in.Ino), e.Name, e.Ino)
		}
		if e.FType == ondisk.DirFTUnknown || e.FType >= ondisk.DirFTMax {
			return fmt.Errorf("%s: directory entry %q has file type %d", where(in.Ino), e.Name, e.FType)
		}
	}
	if !p.sb.ValidIno(in.Parent) {
		return fmt.Errorf("%s: invalid parent inode %d", where(in.Ino), in.Parent)
	}
	return nil
}

func foldASCIICI(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[i] = ondisk.ASCIICIFold(c)
	}
	return out
}

// DirFormFor reports the form a directory with these entries takes in an
// inode whose data fork holds dsize bytes (the literal area without an
// attr fork, see DataForkSize).
func (p *Packer) DirFormFor(entries []DirEntry, parent uint64, dsize int) DirForm {
	if _, ok := p.dirShortform(entries, parent, dsize); ok {
		return DirShortform
	}
	all := p.dirEntries(0, parent, entries)
	ndata := p.layoutData(all)
	switch {
	case ndata == 0:
		return DirBlock
	case p.leaf1Fits(len(all), ndata):
		return DirLeaf
	}
	return DirNode
}

// DataForkSize is the data fork size of an inode of this filesystem
// without an attr fork.
func (p *Packer) DataForkSize() int { return p.lit }

// dirShortform encodes the shortform directory if it fits a data fork of
// dsize bytes and would fit one directory block as the kernel requires.
func (p *Packer) dirShortform(entries []DirEntry, parent uint64, dsize int) ([]byte, bool) {
	if len(entries) > 255 {
		return nil, false
	}
	sf := ondisk.DirSF{Parent: parent, Entries: make([]ondisk.DirSFEntry, len(entries))}
	off := p.geo.DataFirstOffset()
	for i, e := range entries {
		sf.Entries[i] = ondisk.DirSFEntry{Name: e.Name, Offset: uint16(off), FType: e.FType, Ino: e.Ino}
		off += p.geo.DataEntSize(len(e.Name))
		if off > 0xffff {
			return nil, false
		}
	}
	if off+(len(entries)+2)*ondisk.DirLeafEntrySize+ondisk.DirBlockTailSize > p.geo.BlkSize {
		return nil, false
	}
	n := sf.EncodedSize(true)
	if n > dsize {
		return nil, false
	}
	buf := make([]byte, n)
	if _, err := sf.Encode(buf, true); err != nil {
		return nil, false
	}
	return buf, true
}

// dirEntries lists ".", ".." and the entries.
func (p *Packer) dirEntries(self, parent uint64, entries []DirEntry) []dent {
	all := make([]dent, 0, len(entries)+2)
	all = append(all, dent{name: []byte("."), ino: self, ft: ondisk.DirFTDir},
		dent{name: []byte(".."), ino: parent, ft: ondisk.DirFTDir})
	for _, e := range entries {
		all = append(all, dent{name: e.Name, ino: e.Ino, ft: e.FType})
	}
	return all
}

// layoutData places the entries in data blocks. It returns 0 when they
// fit a single-block directory together with the leaf entries and tail,
// else the number of data blocks, filling each before starting the next.
func (p *Packer) layoutData(all []dent) int {
	bsz := p.geo.BlkSize
	end := ondisk.Dir3DataHdrSize
	for i := range all {
		all[i].off = end
		end += p.geo.DataEntSize(len(all[i].name))
	}
	if end+len(all)*ondisk.DirLeafEntrySize+ondisk.DirBlockTailSize <= bsz {
		return 0
	}
	db, off := uint32(0), ondisk.Dir3DataHdrSize
	for i := range all {
		sz := p.geo.DataEntSize(len(all[i].name))
		if off+sz > bsz {
			db++
			off = ondisk.Dir3DataHdrSize
		}
		all[i].db, all[i].off = db, off
		off += sz
	}
	return int(db) + 1
}

func (p *Packer) leaf1Fits(nents, ndata int) bool {
	return ondisk.Dir3LeafHdrSize+nents*ondisk.DirLeafEntrySize+ndata*2+ondisk.DirLeafTailSize <= p.geo.BlkSize
}

// buildDir builds the directory's data fork content and returns its size.
func (p *Packer) buildDir(in *Inode, dsize int, out *forkContent) (uint64, error) {
	if err := p.checkEntries(in); err != nil {
		return 0, err
	}
	if sf, ok := p.dirShortform(in.Entries, in.Parent, dsize); ok {
		out.local, out.isLocal = sf, true
		return uint64(len(sf)), nil
	}
	all := p.dirEntries(in.Ino, in.Parent, in.Entries)
	ndata := p.layoutData(all)
	leaf := make([]ondisk.DirLeafEntry, len(all))
	for i, e := range all {
		leaf[i] = ondisk.DirLeafEntry{Hashval: ondisk.DirHash(p.sb, e.name), Address: p.geo.Dataptr(e.db, e.off)}
	}
	slices.SortStableFunc(leaf, func(a, b ondisk.DirLeafEntry) int {
		return cmp.Or(cmp.Compare(a.Hashval, b.Hashval), cmp.Compare(a.Address, b.Address))
	})
	fpb := p.geo.FSBPerBlock()
	hdr := func(magic uint32, daddr uint64) ondisk.Dir3BlkHdr {
		return ondisk.Dir3BlkHdr{Magic: magic, Blkno: daddr, UUID: p.uuid, Owner: in.Ino}
	}
	var blocks []lblock
	if ndata == 0 {
		blocks = []lblock{{off: 0, n: fpb, fill: func(buf []byte, daddr uint64) error {
			d := &ondisk.DirData{Hdr: hdr(ondisk.Dir3BlockMagic, daddr), Leaf: leaf}
			p.fillData(d, all, len(buf)-ondisk.DirBlockTailSize-len(leaf)*ondisk.DirLeafEntrySize)
			return d.Encode(buf, true)
		}}}
		ext, n, err := p.place(in.Ino, "directory block", p.inodeFSB(in.Ino), blocks)
		out.ext, out.blocks = ext, n
		return uint64(p.geo.BlkSize), err
	}

	// Data blocks: entries of each block are consecutive in all.
	bests := make([]uint16, ndata)
	starts := make([]int, ndata+1)
	for i, j := 0, 0; j < ndata; j++ {
		starts[j] = i
		for i < len(all) && int(all[i].db) == j {
			i++
		}
		starts[j+1] = i
	}
	for j := 0; j < ndata; j++ {
		ents := all[starts[j]:starts[j+1]]
		bests[j] = uint16(p.geo.BlkSize - (ents[len(ents)-1].off + p.geo.DataEntSize(len(ents[len(ents)-1].name))))
		blocks = append(blocks, lblock{off: p.geo.DBToDA(uint32(j)), n: fpb, fill: func(buf []byte, daddr uint64) error {
			d := &ondisk.DirData{Hdr: hdr(ondisk.Dir3DataMagic, daddr)}
			p.fillData(d, ents, len(buf))
			return d.Encode(buf, true)
		}})
	}
	leafDA := p.geo.DBToDA(p.geo.LeafDB)
	daInfo := func(magic uint16, daddr uint64) ondisk.DA3BlkInfo {
		return ondisk.DA3BlkInfo{Magic: magic, Blkno: daddr, UUID: p.uuid, Owner: in.Ino}
	}
	if p.leaf1Fits(len(leaf), ndata) {
		blocks = append(blocks, lblock{off: leafDA, n: fpb, fill: func(buf []byte, daddr uint64) error {
			l := &ondisk.Dir3Leaf{Info: daInfo(ondisk.Dir3Leaf1Magic, daddr), Ents: leaf, Bests: bests}
			return l.Encode(buf)
		}})
	} else {
		// Node form: leafn blocks under a da-btree rooted at the first
		// leaf-space block, then free index blocks.
		per := p.geo.LeafMaxEnts()
		groups := splitEven(len(leaf), per)
		children := make([]daChild, len(groups))
		tree := newDATree(leafDA, uint64(fpb), len(groups), ondisk.DA3NodeMaxEntries(p.geo.BlkSize))
		for i, g := range groups {
			ents := leaf[g[0]:g[1]]
			da := tree.leafDA(i)
			children[i] = daChild{hash: ents[len(ents)-1].Hashval, da: da}
			var back, forw uint32
			if i > 0 {
				back = uint32(tree.leafDA(i - 1))
			}
			if i+1 < len(groups) {
				forw = uint32(tree.leafDA(i + 1))
			}
			tree.leaves = append(tree.leaves, lblock{off: da, n: fpb, fill: func(buf []byte, daddr uint64) error {
				info := daInfo(ondisk.Dir3LeafNMagic, daddr)
				info.Forw, info.Back = forw, back
				l := &ondisk.Dir3Leaf{Info: info, Ents: ents}
				return l.Encode(buf)
			}})
		}
		blocks = append(blocks, tree.blocks(children, fpb, in.Ino, p.uuid)...)
		maxb := p.geo.FreeMaxBests()
		for k := 0; k*maxb < ndata; k++ {
			first := k * maxb
			bb := bests[first:min(first+maxb, ndata)]
			blocks = append(blocks, lblock{off: p.geo.DBToDA(p.geo.FreeDB + uint32(k)), n: fpb, fill: func(buf []byte, daddr uint64) error {
				f := &ondisk.Dir3Free{Hdr: hdr(ondisk.Dir3FreeMagic, daddr), FirstDB: uint32(first), NUsed: uint32(len(bb)), Bests: bb}
				return f.Encode(buf)
			}})
		}
	}
	ext, n, err := p.place(in.Ino, "directory", p.inodeFSB(in.Ino), blocks)
	out.ext, out.blocks = ext, n
	return uint64(ndata) * uint64(p.geo.BlkSize), err
}

// fillData sets the entries, trailing free region and bestfree of a data
// block whose data area ends at end.
func (p *Packer) fillData(d *ondisk.DirData, ents []dent, end int) {
	d.Entries = make([]ondisk.DirDataEntry, len(ents))
	last := ondisk.Dir3DataHdrSize
	for i, e := range ents {
		d.Entries[i] = ondisk.DirDataEntry{Off: e.off, Ino: e.ino, Name: e.name, FType: e.ft}
		last = e.off + p.geo.DataEntSize(len(e.name))
	}
	if free := end - last; free > 0 {
		d.Unused = []ondisk.DirDataUnused{{Off: last, Length: uint16(free)}}
		d.BestFree[0] = ondisk.DirDataFree{Offset: uint16(last), Length: uint16(free)}
	}
}

// splitEven cuts n items into the fewest groups of at most per items,
// sized as evenly as possible so no block falls below half full.
func splitEven(n, per int) [][2]int {
	if n == 0 {
		return nil
	}
	k := (n + per - 1) / per
	out := make([][2]int, k)
	start := 0
	for i := 0; i < k; i++ {
		sz := n / k
		if i < n%k {
			sz++
		}
		out[i] = [2]int{start, start + sz}
		start += sz
	}
	return out
}
