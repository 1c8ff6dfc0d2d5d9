// Package pack turns the contents of a file tree into XFS v5 on-disk
// structures, bottom-up and deterministically: inode cores, directories in
// every form (shortform, block, leaf, node), extended attributes in every
// form (shortform, leaf, node, remote values), inline and remote symlinks,
// device inodes, extent lists and bmbt B-trees, and inode chunks with their
// inobt records.
//
// It knows nothing of free space policy: every block it needs comes from an
// Allocator, and every block it fills goes to an io.WriterAt at the byte
// offset of its filesystem block. The caller (mkfs -p) assigns inode
// numbers, writes regular file data, and accounts the AG free space, inode
// B-trees and reverse mappings from what Pack reports.
package pack

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"xfskit/ondisk"
)

// Run is a physically contiguous range of filesystem blocks.
type Run struct {
	FSB uint64 // first filesystem block (AG-encoded)
	Len uint64 // blocks
}

// Request asks an Allocator for blocks.
type Request struct {
	Len    uint64 // blocks wanted (all of them, or an error)
	Near   uint64 // filesystem block to allocate close to
	Align  uint32 // when > 1, the first AG block is a multiple of this
	Contig bool   // the blocks must form one run
}

// Allocator hands out free blocks. It returns runs in the order their
// blocks are to be used, totalling exactly r.Len blocks.
type Allocator interface {
	Alloc(r Request) ([]Run, error)
}

// AllocFunc adapts a function to Allocator.
type AllocFunc func(r Request) ([]Run, error)

// Alloc calls f.
func (f AllocFunc) Alloc(r Request) ([]Run, error) { return f(r) }

// Packer builds inodes for one filesystem geometry.
type Packer struct {
	sb     *ondisk.Superblock
	geo    ondisk.DirGeo
	alloc  Allocator
	w      io.WriterAt
	uuid   ondisk.UUID
	bs     int // filesystem block size
	isize  int // inode size
	lit    int // literal area (forks) of an inode
	flags2 uint64
}

// Fork offset rules (xfs_bmap_compute_attr_offset and
// xfs_attr_shortform_bytesfit): a bmbt root needs room for this many
// key/pointer pairs in each fork.
const (
	minDataBtPtrs = 3
	minAttrBtPtrs = 2
)

func bmdrSpace(n int) int { return ondisk.BmdrHdrSize + n*(ondisk.BmbtKeySize+ondisk.BmbtPtrSize) }

// New returns a Packer for the filesystem described by sb. Blocks are
// obtained from alloc and written to w at their byte offsets.
func New(sb *ondisk.Superblock, alloc Allocator, w io.WriterAt) (*Packer, error) {
	if !sb.IsV5() {
		return nil, fmt.Errorf("pack: XFS version %d filesystem; only v5 (CRC) is supported", sb.Version())
	}
	if !sb.HasFType() {
		return nil, fmt.Errorf("pack: v5 filesystem without directory file types")
	}
	isize := int(sb.InodeSize)
	if isize < ondisk.DinodeMinSize || isize > ondisk.DinodeMaxSize || isize > int(sb.BlockSize) {
		return nil, fmt.Errorf("pack: inode size %d not supported with %d-byte blocks", isize, sb.BlockSize)
	}
	p := &Packer{
		sb: sb, geo: ondisk.NewDirGeo(sb), alloc: alloc, w: w, uuid: sb.MetaUUIDOrUUID(),
		bs: int(sb.BlockSize), isize: isize, lit: isize - ondisk.DinodeV3CoreSize,
	}
	if sb.HasBigtime() {
		p.flags2 |= ondisk.Diflag2Bigtime
	}
	if sb.HasNrext64() {
		p.flags2 |= ondisk.Diflag2Nrext64
	}
	return p, nil
}

// SB returns the superblock the Packer builds for.
func (p *Packer) SB() *ondisk.Superblock { return p.sb }

// defaultForkOff is where the kernel puts the attr fork of a new inode
// that will get attributes (xfs_default_attroffset), in 8-byte units.
func (p *Packer) defaultForkOff(dev bool) int {
	if dev {
		return 1
	}
	if p.isize == 256 {
		return (p.lit - bmdrSpace(minAttrBtPtrs)) >> 3
	}
	return bmdrSpace(6*minAttrBtPtrs) >> 3
}

// DirEntry is one directory entry ("." and ".." are implicit).
type DirEntry struct {
	Name  []byte
	Ino   uint64
	FType uint8 // ondisk.DirFT*
}

// Inode describes one inode to build. Which content fields apply depends
// on the file type in Mode.
type Inode struct {
	Ino        uint64
	Mode       uint16 // file type and permission bits
	UID, GID   uint32
	NLink      uint32
	ProjID     uint32
	Flags      uint16 // di_flags
	Flags2     uint64 // di_flags2 bits beyond bigtime/nrext64, which follow the superblock
	ExtSize    uint32
	CowExtSize uint32
	Gen        uint32
	Atime      ondisk.Timestamp
	Mtime      ondisk.Timestamp
	Ctime      ondisk.Timestamp
	Crtime     ondisk.Timestamp

	Rdev    uint32          // character and block devices: ondisk.MakeDev form
	Target  []byte          // symlinks
	Parent  uint64          // directories: the ".." inode
	Entries []DirEntry      // directories, in the order to store them
	Size    uint64          // regular files
	Extents []ondisk.Extent // regular files: data blocks already written, by file offset
	Xattrs  []Xattr         // in the order to store them
}

// Result reports what Pack built, for space and reverse-mapping accounting.
type Result struct {
	ForkOff    uint8
	DataFormat uint8
	AttrFormat uint8
	Size       uint64
	NBlocks    uint64          // blocks of both forks, bmbt blocks included
	Data       []ondisk.Extent // data fork mapping
	Attr       []ondisk.Extent // attr fork mapping
	DataBmbt   []Run           // data fork bmbt blocks
	AttrBmbt   []Run           // attr fork bmbt blocks
}

// Generation is a deterministic inode generation number derived from the
// filesystem UUID and the inode number.
func Generation(uuid ondisk.UUID, ino uint64) uint32 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], ino)
	c := crc32.Update(0, crc32.MakeTable(crc32.Castagnoli), uuid[:])
	return crc32.Update(c, crc32.MakeTable(crc32.Castagnoli), b[:])
}

// where names an inode in errors.
func where(ino uint64) string { return fmt.Sprintf("inode %d", ino) }

// forkContent is one fork under construction: inline bytes or a mapping.
type forkContent struct {
	local   []byte          // FmtLocal payload
	dev     bool            // FmtDev
	rdev    uint32          // FmtDev payload
	ext     []ondisk.Extent // FmtExtents / FmtBtree mapping
	blocks  uint64          // blocks mapped (bmbt blocks not included)
	isLocal bool
}

func (f *forkContent) need() int {
	switch {
	case f.dev:
		return 8
	case f.isLocal:
		return len(f.local)
	}
	return len(f.ext) * ondisk.BmbtRecSize
}

// Pack builds inode in: it allocates and writes every block the inode's
// directory, symlink and attribute contents need (and bmbt blocks for
// mappings too long for the inode), then encodes the inode into buf
// (exactly one inode's bytes). Regular file data must already be written;
// in.Extents maps it.
func (p *Packer) Pack(in *Inode, buf []byte) (*Result, error) {
	if len(buf) != p.isize {
		return nil, fmt.Errorf("%s: buffer of %d bytes for a %d-byte inode", where(in.Ino), len(buf), p.isize)
	}
	if !p.sb.ValidIno(in.Ino) {
		return nil, fmt.Errorf("%s: not a valid inode number for this filesystem", where(in.Ino))
	}
	ftype := in.Mode & ondisk.ModeTypeMask
	isDev := false
	switch ftype {
	case ondisk.ModeChar, ondisk.ModeBlock, ondisk.ModeFIFO, ondisk.ModeSocket:
		isDev = true
	case ondisk.ModeReg, ondisk.ModeDir, ondisk.ModeSymlink:
	default:
		return nil, fmt.Errorf("%s: unsupported file type in mode 0%o", where(in.Ino), in.Mode)
	}
	attrs, err := p.prepareAttrs(in)
	if err != nil {
		return nil, err
	}
	res := &Result{}

	// An inode that will hold attributes starts with the kernel's default
	// attr fork offset; the data fork is built to fit in front of it.
	forkOff := 0
	if len(attrs) > 0 {
		forkOff = p.defaultForkOff(isDev)
	}
	dsize := p.lit
	if forkOff != 0 {
		dsize = forkOff << 3
	}
	var data forkContent
	switch ftype {
	case ondisk.ModeReg:
		data.ext, err = normalizeExtents(in.Extents, in.Ino, p.sb.AGBlkLog)
		if err != nil {
			return nil, err
		}
		for _, e := range data.ext {
			data.blocks += e.Length
		}
		res.Size = in.Size
	case ondisk.ModeDir:
		res.Size, err = p.buildDir(in, dsize, &data)
	case ondisk.ModeSymlink:
		res.Size, err = p.buildSymlink(in, dsize, &data)
	default:
		data.dev = true
		if ftype == ondisk.ModeChar || ftype == ondisk.ModeBlock {
			data.rdev = in.Rdev
		}
	}
	if err != nil {
		return nil, err
	}

	// Attributes go in the inode when they fit, possibly moving the fork
	// offset as xfs_attr_shortform_bytesfit does; otherwise into blocks.
	var attr forkContent
	if len(attrs) > 0 {
		sf, ok := p.attrShortform(attrs)
		if ok {
			if off := p.attrBytesFit(len(sf), forkOff, &data, isDev); off != 0 {
				forkOff = off
				attr.local, attr.isLocal = sf, true
			}
		}
		if !attr.isLocal {
			if err := p.buildAttrBlocks(in.Ino, attrs, &attr); err != nil {
				return nil, err
			}
		}
	}
	dsize = p.lit
	if forkOff != 0 {
		dsize = forkOff << 3
	}
	asize := p.lit - dsize

	// Encode the forks into the literal area.
	clear(buf)
	core := ondisk.DinodeV3CoreSize
	dfork := buf[core : core+dsize]
	afork := buf[core+dsize:]
	near := p.inodeFSB(in.Ino)
	res.DataFormat, res.DataBmbt, err = p.encodeFork(in.Ino, false, &data, dfork, near)
	if err != nil {
		return nil, err
	}
	res.AttrFormat = ondisk.FmtExtents // what an inode without an attr fork records
	if forkOff != 0 {
		res.AttrFormat, res.AttrBmbt, err = p.encodeFork(in.Ino, true, &attr, afork[:asize], near)
		if err != nil {
			return nil, err
		}
	}
	res.ForkOff = uint8(forkOff)
	res.Data, res.Attr = data.ext, attr.ext
	res.NBlocks = data.blocks + attr.blocks + runBlocks(res.DataBmbt) + runBlocks(res.AttrBmbt)

	d := ondisk.Dinode{
		Magic: ondisk.DinodeMagic, Mode: in.Mode, Version: 3, Format: res.DataFormat,
		UID: in.UID, GID: in.GID, NLink: in.NLink,
		ProjIDLo: uint16(in.ProjID), ProjIDHi: uint16(in.ProjID >> 16),
		Atime: in.Atime, Mtime: in.Mtime, Ctime: in.Ctime, Crtime: in.Crtime,
		Size: res.Size, NBlocks: res.NBlocks, ExtSize: in.ExtSize,
		NExtents: uint64(len(data.ext)), ANExtents: uint32(len(attr.ext)),
		ForkOff: res.ForkOff, AFormat: res.AttrFormat, Flags: in.Flags, Gen: in.Gen,
		NextUnlinked: ondisk.NullAGIno, ChangeCount: 1, Flags2: p.flags2 | in.Flags2,
		CowExtSize: in.CowExtSize, Ino: in.Ino, UUID: p.uuid,
	}
	if len(attr.ext) > int(d.MaxNextents(true)) || uint64(len(data.ext)) > d.MaxNextents(false) {
		return nil, fmt.Errorf("%s: %d data and %d attr extents exceed the extent counters", where(in.Ino), len(data.ext), len(attr.ext))
	}
	d.Encode(buf)
	return res, nil
}

// attrBytesFit decides whether a shortform attr fork of n bytes fits and
// returns the fork offset to use (0: it does not fit). It follows
// xfs_attr_shortform_bytesfit for an inode whose attr fork currently sits
// at forkOff with the data fork content data.
func (p *Packer) attrBytesFit(n, forkOff int, data *forkContent, dev bool) int {
	if n > p.lit {
		return 0
	}
	offset := (p.lit - n) >> 3
	if dev {
		if offset >= 1 {
			return 1
		}
		return 0
	}
	if n <= p.lit-forkOff<<3 {
		return forkOff
	}
	if !data.isLocal && data.need() > forkOff<<3 {
		// A data bmbt root keeps its fork offset.
		return 0
	}
	minOff := (max(data.need(), bmdrSpace(minDataBtPtrs)) + 7) >> 3
	maxOff := (p.lit - bmdrSpace(minAttrBtPtrs)) >> 3
	switch {
	case offset >= maxOff:
		return maxOff
	case offset >= minOff:
		return offset
	}
	return 0
}

func runBlocks(rs []Run) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Len
	}
	return n
}

// inodeFSB is the filesystem block holding ino, the allocation target for
// the inode's metadata blocks.
func (p *Packer) inodeFSB(ino uint64) uint64 {
	agno, agino := p.sb.InoToAG(ino)
	agbno, _ := p.sb.AGInoToAGB(agino)
	return p.sb.AGToFSB(agno, agbno)
}

// normalizeExtents sorts nothing but checks a caller's mapping: increasing,
// non-overlapping file offsets, nonzero lengths; long extents are split to
// the on-disk maximum and adjacent contiguous ones merged (up to it).
func normalizeExtents(in []ondisk.Extent, ino uint64, agShift uint8) ([]ondisk.Extent, error) {
	out := make([]ondisk.Extent, 0, len(in))
	var next uint64
	for i, e := range in {
		if e.Length == 0 {
			return nil, fmt.Errorf("%s: extent %d has zero length", where(ino), i)
		}
		if i > 0 && e.Offset < next {
			return nil, fmt.Errorf("%s: extent %d at file block %d overlaps or precedes the previous one ending at %d", where(ino), i, e.Offset, next)
		}
		next = e.Offset + e.Length
		for e.Length > 0 {
			if k := len(out); k > 0 {
				l := &out[k-1]
				if l.End() == e.Offset && l.StartBlock+l.Length == e.StartBlock && l.Unwritten == e.Unwritten && l.Length < ondisk.MaxExtLen &&
					l.StartBlock>>agShift == e.StartBlock>>agShift {
					n := min(e.Length, ondisk.MaxExtLen-l.Length)
					l.Length += n
					e.Offset += n
					e.StartBlock += n
					e.Length -= n
					continue
				}
			}
			n := min(e.Length, ondisk.MaxExtLen)
			out = append(out, ondisk.Extent{Offset: e.Offset, StartBlock: e.StartBlock, Length: n, Unwritten: e.Unwritten})
			e.Offset += n
			e.StartBlock += n
			e.Length -= n
		}
	}
	return out, nil
}

// encodeFork writes one fork's content into fork and returns its format
// and the bmbt blocks it needed.
func (p *Packer) encodeFork(ino uint64, attr bool, c *forkContent, fork []byte, near uint64) (uint8, []Run, error) {
	switch {
	case c.dev:
		if len(fork) < 4 {
			return 0, nil, fmt.Errorf("%s: no room for the device number", where(ino))
		}
		ondisk.EncodeRdev(fork, c.rdev)
		return ondisk.FmtDev, nil, nil
	case c.isLocal:
		if len(c.local) > len(fork) {
			return 0, nil, fmt.Errorf("%s: %d inline bytes do not fit a %d-byte fork", where(ino), len(c.local), len(fork))
		}
		copy(fork, c.local)
		return ondisk.FmtLocal, nil, nil
	}
	if len(c.ext)*ondisk.BmbtRecSize <= len(fork) {
		for i, e := range c.ext {
			e.Encode(fork[i*ondisk.BmbtRecSize:])
		}
		return ondisk.FmtExtents, nil, nil
	}
	runs, err := p.buildBmbt(ino, attr, c.ext, fork, near)
	return ondisk.FmtBtree, runs, err
}

// fsbOffset is the byte offset of filesystem block fsb on the device.
func (p *Packer) fsbOffset(fsb uint64) int64 {
	return int64(p.sb.FSBToDaddr(fsb)) << ondisk.BBShift
}

func (p *Packer) write(buf []byte, fsb uint64) error {
	if _, err := p.w.WriteAt(buf, p.fsbOffset(fsb)); err != nil {
		return fmt.Errorf("writing block %d: %w", fsb, err)
	}
	return nil
}

// allocate asks the allocator for n blocks near near and checks the answer.
func (p *Packer) allocate(ino uint64, what string, n uint64, near uint64) ([]Run, error) {
	runs, err := p.alloc.Alloc(Request{Len: n, Near: near})
	if err != nil {
		return nil, fmt.Errorf("%s: allocating %d blocks for %s: %w", where(ino), n, what, err)
	}
	var got uint64
	for _, r := range runs {
		if r.Len == 0 || !p.sb.ValidFSB(r.FSB) || !p.sb.ValidFSB(r.FSB+r.Len-1) {
			return nil, fmt.Errorf("%s: allocator returned an invalid run %d+%d for %s", where(ino), r.FSB, r.Len, what)
		}
		a1, _ := p.sb.FSBToAG(r.FSB)
		a2, _ := p.sb.FSBToAG(r.FSB + r.Len - 1)
		if a1 != a2 {
			return nil, fmt.Errorf("%s: allocator run %d+%d for %s crosses an AG boundary", where(ino), r.FSB, r.Len, what)
		}
		got += r.Len
	}
	if got != n {
		return nil, fmt.Errorf("%s: allocator returned %d of %d blocks for %s", where(ino), got, n, what)
	}
	return runs, nil
}
