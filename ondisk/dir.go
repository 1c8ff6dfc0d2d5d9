package ondisk

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Version 3 (CRC) directory block magic numbers.
const (
	Dir3BlockMagic = 0x58444233 // "XDB3": single-block directory (data + leaf)
	Dir3DataMagic  = 0x58444433 // "XDD3": data block of a multi-block directory
	Dir3FreeMagic  = 0x58444633 // "XDF3": free space index block
)

// Directory layout constants.
const (
	Dir3BlkHdrSize   = 48 // magic, crc, blkno, lsn, uuid, owner
	Dir3DataHdrSize  = 64 // blk hdr + bestfree[3] + pad
	Dir3LeafHdrSize  = 64 // da3 blkinfo + count + stale + pad
	Dir3FreeHdrSize  = 64 // blk hdr + firstdb + nvalid + nused + pad
	Dir3CRCOff       = 4  // CRC offset in data, block and free blocks
	DirDataAlign     = 8
	DirDataFreeTag   = 0xffff // first two bytes of an unused region
	DirDataFDCount   = 3      // bestfree slots
	DirLeafEntrySize = 8
	DirBlockTailSize = 8
	DirLeafTailSize  = 4
	DirNullDataptr   = 0      // address of a stale leaf entry
	DirNullDataOff   = 0xffff // free-index best of a missing data block
	DirMaxShortIno   = 0xffffffff
	DirMaxNameLen    = 255
	// A directory's logical space is split into 32 GiB regions: data blocks,
	// then leaf/node blocks, then free index blocks.
	DirSpaceSize  = uint64(1) << 35
	DirDataOffset = 0
	DirLeafOffset = DirSpaceSize
	DirFreeOffset = 2 * DirSpaceSize
	// inoMask keeps the 56 meaningful bits of an 8-byte shortform inode.
	inoMask = uint64(1)<<56 - 1
)

// Directory entry file types (XFS_DIR3_FT_*).
const (
	DirFTUnknown  = 0
	DirFTRegFile  = 1
	DirFTDir      = 2
	DirFTChrdev   = 3
	DirFTBlkdev   = 4
	DirFTFifo     = 5
	DirFTSock     = 6
	DirFTSymlink  = 7
	DirFTWhiteout = 8
	DirFTMax      = 9
)

// DirFTypeName names a file type byte.
func DirFTypeName(ft uint8) string {
	names := [...]string{"unknown", "file", "directory", "char", "block", "fifo", "sock", "symlink", "whiteout"}
	if int(ft) < len(names) {
		return names[ft]
	}
	return fmt.Sprintf("ftype(%d)", ft)
}

// DirFTypeFromMode gives the file type byte for an inode mode (S_IFMT bits).
func DirFTypeFromMode(mode uint16) uint8 {
	switch mode & 0xf000 {
	case 0x8000:
		return DirFTRegFile
	case 0x4000:
		return DirFTDir
	case 0x2000:
		return DirFTChrdev
	case 0x6000:
		return DirFTBlkdev
	case 0x1000:
		return DirFTFifo
	case 0xc000:
		return DirFTSock
	case 0xa000:
		return DirFTSymlink
	}
	return DirFTUnknown
}

// DirNameValid reports whether a name may appear in a directory: 1..255
// bytes without '/' or NUL.
func DirNameValid(name []byte) bool {
	return len(name) > 0 && len(name) <= DirMaxNameLen && bytes.IndexByte(name, '/') < 0 && bytes.IndexByte(name, 0) < 0
}

// DirGeo is the directory geometry of a filesystem: block size and the
// logical block numbers where the leaf and free spaces begin.
type DirGeo struct {
	BlkSize   int   // directory block size in bytes
	FSBLog    uint8 // log2 of the filesystem block size
	DirBlkLog uint8 // log2 of filesystem blocks per directory block
	FType     bool  // entries carry a file type byte
	LeafDB    uint32
	FreeDB    uint32
}

// NewDirGeo derives the directory geometry from the superblock.
func NewDirGeo(sb *Superblock) DirGeo {
	g := DirGeo{BlkSize: sb.DirBlockSize(), FSBLog: sb.BlockLog, DirBlkLog: sb.DirBlkLog, FType: sb.HasFType()}
	g.LeafDB = uint32(DirLeafOffset >> (g.FSBLog + g.DirBlkLog))
	g.FreeDB = uint32(DirFreeOffset >> (g.FSBLog + g.DirBlkLog))
	return g
}

// FSBPerBlock is the number of filesystem blocks in one directory block.
func (g DirGeo) FSBPerBlock() int { return 1 << g.DirBlkLog }

// DBToDA converts a directory block number to the logical filesystem block
// (file offset in blocks) where it starts.
func (g DirGeo) DBToDA(db uint32) uint64 { return uint64(db) << g.DirBlkLog }

// DAToDB converts a logical filesystem block to its directory block.
func (g DirGeo) DAToDB(da uint64) uint64 { return da >> g.DirBlkLog }

// DataptrToDB gives the directory block addressed by a leaf entry address.
func (g DirGeo) DataptrToDB(p uint32) uint32 {
	return uint32(uint64(p) * DirDataAlign >> (g.FSBLog + g.DirBlkLog))
}

// DataptrToOff gives the byte offset within its block of a leaf address.
func (g DirGeo) DataptrToOff(p uint32) int {
	return int(uint64(p) * DirDataAlign & uint64(g.BlkSize-1))
}

// Dataptr forms the leaf address of the entry at off in directory block db.
func (g DirGeo) Dataptr(db uint32, off int) uint32 {
	return uint32((uint64(db)<<(g.FSBLog+g.DirBlkLog) + uint64(off)) / DirDataAlign)
}

// DataEntSize is the on-disk size of a data entry with a name of namelen.
func (g DirGeo) DataEntSize(namelen int) int { return DirDataEntSize(namelen, g.FType) }

// DirDataEntSize is the 8-aligned size of a data entry: inumber, namelen,
// name, optional file type and the 2-byte tag.
func DirDataEntSize(namelen int, ftype bool) int {
	n := 8 + 1 + namelen + 2
	if ftype {
		n++
	}
	return (n + DirDataAlign - 1) &^ (DirDataAlign - 1)
}

// DataFirstOffset is where the first entry after "." and ".." sits in the
// first block; shortform offsets start here.
func (g DirGeo) DataFirstOffset() int {
	return Dir3DataHdrSize + g.DataEntSize(1) + g.DataEntSize(2)
}

// LeafMaxEnts is the number of entries that fit in a leafn block.
func (g DirGeo) LeafMaxEnts() int { return (g.BlkSize - Dir3LeafHdrSize) / DirLeafEntrySize }

// FreeMaxBests is the number of data blocks one free index block covers.
func (g DirGeo) FreeMaxBests() int { return (g.BlkSize - Dir3FreeHdrSize) / 2 }

// FreeBlockFor gives the free index block number and slot covering data
// block db.
func (g DirGeo) FreeBlockFor(db uint32) (fdb uint32, index int) {
	m := uint32(g.FreeMaxBests())
	return g.FreeDB + db/m, int(db % m)
}

// ---------------------------------------------------------------------------
// Shortform (in-inode) directories.

// DirSFEntry is one entry of a shortform directory. Offset is the byte
// offset the entry would have in a block-form directory (its readdir
// cookie).
type DirSFEntry struct {
	Name   []byte
	Offset uint16
	FType  uint8
	Ino    uint64
}

// DirSF is a decoded shortform directory. "." is implicit and ".." is
// Parent; neither appears in Entries.
type DirSF struct {
	Count   uint8
	I8Count uint8 // entries (parent included) needing 8-byte inode numbers
	Parent  uint64
	Entries []DirSFEntry
	Size    int // bytes consumed by header and entries
}

func dirSFInoSize(i8count uint8) int {
	if i8count != 0 {
		return 8
	}
	return 4
}

// DecodeDirSF decodes a shortform directory from the inode data fork bytes
// (di_size of them). Names alias buf.
func DecodeDirSF(buf []byte, ftype bool) (*DirSF, error) {
	const st = "shortform directory"
	if len(buf) < 2 {
		return nil, shortErr(st, len(buf), 2)
	}
	d := &DirSF{Count: buf[0], I8Count: buf[1]}
	isz := dirSFInoSize(d.I8Count)
	if len(buf) < 2+isz {
		return nil, shortErr(st, len(buf), 2+isz)
	}
	d.Parent = getIno(buf[2:], isz)
	p := 2 + isz
	extra := isz
	if ftype {
		extra++
	}
	d.Entries = make([]DirSFEntry, 0, d.Count)
	for i := 0; i < int(d.Count); i++ {
		if p+3 > len(buf) {
			return d, Corrupt(st, "", "entry", "entry %d header at byte %d runs past the %d-byte fork", i, p, len(buf))
		}
		nl := int(buf[p])
		end := p + 3 + nl + extra
		if end > len(buf) {
			return d, Corrupt(st, "", "entry", "entry %d (%d-byte name) at byte %d runs past the %d-byte fork", i, nl, p, len(buf))
		}
		e := DirSFEntry{Name: buf[p+3 : p+3+nl], Offset: binary.BigEndian.Uint16(buf[p+1:])}
		q := p + 3 + nl
		if ftype {
			e.FType = buf[q]
			q++
		}
		e.Ino = getIno(buf[q:], isz)
		d.Entries = append(d.Entries, e)
		p = end
	}
	d.Size = p
	return d, nil
}

// dirInoValid checks an inode number named by a directory. The explicit
// AG-number test guards against high bits that InoToAG's 32-bit AG number
// would drop.
func dirInoValid(sb *Superblock, ino uint64) bool {
	return ino>>(sb.AGBlkLog+sb.InoPBLog) < uint64(sb.AGCount) && sb.ValidIno(ino)
}

func getIno(b []byte, size int) uint64 {
	if size == 8 {
		return binary.BigEndian.Uint64(b) & inoMask
	}
	return uint64(binary.BigEndian.Uint32(b))
}

// EncodedSize is the number of bytes Encode will write.
func (d *DirSF) EncodedSize(ftype bool) int {
	isz := dirSFInoSize(d.countI8())
	n := 2 + isz
	for _, e := range d.Entries {
		n += 3 + len(e.Name) + isz
		if ftype {
			n++
		}
	}
	return n
}

func (d *DirSF) countI8() uint8 {
	var n int
	if d.Parent > DirMaxShortIno {
		n++
	}
	for _, e := range d.Entries {
		if e.Ino > DirMaxShortIno {
			n++
		}
	}
	if n > 255 {
		n = 255
	}
	return uint8(n)
}

// Encode writes the directory into buf, setting Count, I8Count and Size from
// the entries, and returns the number of bytes written (the new di_size).
func (d *DirSF) Encode(buf []byte, ftype bool) (int, error) {
	if len(d.Entries) > 255 {
		return 0, fmt.Errorf("shortform directory: %d entries (maximum 255)", len(d.Entries))
	}
	n := d.EncodedSize(ftype)
	if n > len(buf) {
		return 0, fmt.Errorf("shortform directory: needs %d bytes, have %d", n, len(buf))
	}
	d.Count = uint8(len(d.Entries))
	d.I8Count = d.countI8()
	isz := dirSFInoSize(d.I8Count)
	buf[0], buf[1] = d.Count, d.I8Count
	putIno(buf[2:], isz, d.Parent)
	p := 2 + isz
	for _, e := range d.Entries {
		if len(e.Name) > DirMaxNameLen {
			return 0, fmt.Errorf("shortform directory: name of %d bytes", len(e.Name))
		}
		buf[p] = uint8(len(e.Name))
		binary.BigEndian.PutUint16(buf[p+1:], e.Offset)
		p += 3 + copy(buf[p+3:], e.Name)
		if ftype {
			buf[p] = e.FType
			p++
		}
		putIno(buf[p:], isz, e.Ino)
		p += isz
	}
	d.Size = p
	return p, nil
}

func putIno(b []byte, size int, ino uint64) {
	if size == 8 {
		binary.BigEndian.PutUint64(b, ino)
	} else {
		binary.BigEndian.PutUint32(b, uint32(ino))
	}
}

// VerifyDirSF decodes and checks a shortform directory: entries fill the
// fork exactly, names are valid, offsets increase, inode numbers are valid,
// i8count matches, file types are known, and the directory is small enough
// to be shortform.
func VerifyDirSF(buf []byte, sb *Superblock, where string) (*DirSF, error) {
	g := NewDirGeo(sb)
	d, err := DecodeDirSF(buf, g.FType)
	if err != nil {
		return d, withWhere(err, where)
	}
	c := func(field, f string, a ...any) error { return Corrupt("shortform directory", where, field, f, a...) }
	if !dirInoValid(sb, d.Parent) {
		return d, c("parent", "invalid parent inode %d", d.Parent)
	}
	i8 := 0
	if d.Parent > DirMaxShortIno {
		i8++
	}
	off := g.DataFirstOffset()
	for i, e := range d.Entries {
		if !DirNameValid(e.Name) {
			return d, c("name", "entry %d has invalid name %q", i, e.Name)
		}
		if int(e.Offset) < off {
			return d, c("offset", "entry %d %q offset %d below %d", i, e.Name, e.Offset, off)
		}
		if !dirInoValid(sb, e.Ino) {
			return d, c("inumber", "entry %d %q: invalid inode %d", i, e.Name, e.Ino)
		}
		if e.Ino > DirMaxShortIno {
			i8++
		}
		if g.FType && e.FType >= DirFTMax {
			return d, c("ftype", "entry %d %q: file type %d", i, e.Name, e.FType)
		}
		off = int(e.Offset) + g.DataEntSize(len(e.Name))
	}
	if i8 != int(d.I8Count) {
		return d, c("i8count", "%d, but %d inode numbers need 8 bytes", d.I8Count, i8)
	}
	if d.Size != len(buf) {
		return d, c("size", "entries end at byte %d of a %d-byte fork", d.Size, len(buf))
	}
	if off+(int(d.Count)+2)*DirLeafEntrySize+DirBlockTailSize > g.BlkSize {
		return d, c("size", "too large for shortform (would need %d bytes as a block)", off+(int(d.Count)+2)*DirLeafEntrySize+DirBlockTailSize)
	}
	return d, nil
}

// ---------------------------------------------------------------------------
// Self-describing directory block header (data, block and free blocks).

// Dir3BlkHdr is the 48-byte header of v3 data, block and free blocks.
type Dir3BlkHdr struct {
	Magic uint32
	CRC   uint32
	Blkno uint64 // daddr of the first filesystem block of the directory block
	LSN   uint64
	UUID  UUID
	Owner uint64
}

func decodeDir3BlkHdr(buf []byte) Dir3BlkHdr {
	be := binary.BigEndian
	h := Dir3BlkHdr{Magic: be.Uint32(buf[0:]), CRC: binary.LittleEndian.Uint32(buf[4:]),
		Blkno: be.Uint64(buf[8:]), LSN: be.Uint64(buf[16:]), Owner: be.Uint64(buf[40:])}
	copy(h.UUID[:], buf[24:40])
	return h
}

func (h *Dir3BlkHdr) encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Magic)
	be.PutUint64(buf[8:], h.Blkno)
	be.PutUint64(buf[16:], h.LSN)
	copy(buf[24:40], h.UUID[:])
	be.PutUint64(buf[40:], h.Owner)
}

// DirBlockName names a directory block magic for messages.
func DirBlockName(magic uint32) string {
	switch magic {
	case Dir3BlockMagic:
		return "dir3 block"
	case Dir3DataMagic:
		return "dir3 data block"
	case Dir3FreeMagic:
		return "dir3 free block"
	}
	return fmt.Sprintf("dir block (magic 0x%08x)", magic)
}

func verifyDir3BlkHdr(buf []byte, magic uint32, uuid UUID, daddr, owner uint64, where string) error {
	st := DirBlockName(magic)
	if len(buf) < Dir3DataHdrSize {
		return Corrupt(st, where, "", "block of %d bytes is shorter than its header", len(buf))
	}
	h := decodeDir3BlkHdr(buf)
	c := func(field, f string, a ...any) error { return Corrupt(st, where, field, f, a...) }
	if h.Magic != magic {
		return c("magic", "bad magic 0x%08x, expected 0x%08x", h.Magic, magic)
	}
	if !CRCOK(buf, Dir3CRCOff) {
		return c("crc", "checksum mismatch (stored 0x%08x, computed 0x%08x)", StoredCRC(buf, Dir3CRCOff), CRC32c(buf, Dir3CRCOff))
	}
	if h.UUID != uuid {
		return c("uuid", "UUID %s does not match filesystem %s", h.UUID, uuid)
	}
	if h.Blkno != daddr {
		return c("blkno", "block claims daddr %d but was read from daddr %d", h.Blkno, daddr)
	}
	if owner != ^uint64(0) && h.Owner != owner {
		return c("owner", "owner %d, expected inode %d", h.Owner, owner)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Data and single-block directory blocks.

// DirDataFree is a bestfree slot: offset and length of a free region.
type DirDataFree struct {
	Offset uint16
	Length uint16
}

// DirDataEntry is a live entry of a data block.
type DirDataEntry struct {
	Off   int // byte offset in the directory block
	Ino   uint64
	Name  []byte // aliases the block buffer
	FType uint8
	Tag   uint16 // stored offset of the entry; 0 on Encode means Off
}

// DirDataUnused is a free region of a data block.
type DirDataUnused struct {
	Off    int
	Length uint16
	Tag    uint16 // 0 on Encode means Off
}

// DirLeafEntry maps a name hash to a data entry address (byte offset in
// the data space / 8); Address 0 marks a stale entry.
type DirLeafEntry struct {
	Hashval uint32
	Address uint32
}

// DirBlockTail ends a single-block directory.
type DirBlockTail struct {
	Count uint32 // leaf entries
	Stale uint32 // of which stale
}

// DirData is a decoded data block (XDD3) or single-block directory (XDB3).
// Entries and Unused are in block order.
type DirData struct {
	Hdr      Dir3BlkHdr
	BestFree [DirDataFDCount]DirDataFree
	Pad      uint32
	Entries  []DirDataEntry
	Unused   []DirDataUnused
	// Single-block form only.
	Leaf []DirLeafEntry
	Tail DirBlockTail
}

// IsBlock reports the single-block form.
func (d *DirData) IsBlock() bool { return d.Hdr.Magic == Dir3BlockMagic }

// DataEnd is the end of the entry area: the block size, or for the
// single-block form the start of the leaf entries.
func (d *DirData) DataEnd(blkSize int) int {
	if d.IsBlock() {
		return blkSize - DirBlockTailSize - len(d.Leaf)*DirLeafEntrySize
	}
	return blkSize
}

// DecodeDirData decodes a whole data or single-block directory block (all
// of its filesystem blocks). It walks entries and free regions from the
// header to the end of the data area, bounds-checking each.
func DecodeDirData(buf []byte, ftype bool) (*DirData, error) {
	if len(buf) < Dir3DataHdrSize {
		return nil, shortErr("dir3 data block", len(buf), Dir3DataHdrSize)
	}
	d := &DirData{Hdr: decodeDir3BlkHdr(buf)}
	st := DirBlockName(d.Hdr.Magic)
	if d.Hdr.Magic != Dir3BlockMagic && d.Hdr.Magic != Dir3DataMagic {
		return d, Corrupt(st, "", "magic", "not a directory data block")
	}
	be := binary.BigEndian
	for i := range d.BestFree {
		d.BestFree[i] = DirDataFree{be.Uint16(buf[48+4*i:]), be.Uint16(buf[50+4*i:])}
	}
	d.Pad = be.Uint32(buf[60:])
	end := len(buf)
	if d.IsBlock() {
		if len(buf) < Dir3DataHdrSize+DirBlockTailSize {
			return d, shortErr(st, len(buf), Dir3DataHdrSize+DirBlockTailSize)
		}
		d.Tail = DirBlockTail{be.Uint32(buf[len(buf)-8:]), be.Uint32(buf[len(buf)-4:])}
		room := (len(buf) - Dir3DataHdrSize - DirBlockTailSize) / DirLeafEntrySize
		if uint64(d.Tail.Count) > uint64(room) {
			return d, Corrupt(st, "", "tail count", "%d leaf entries do not fit in a %d-byte block", d.Tail.Count, len(buf))
		}
		end = len(buf) - DirBlockTailSize - int(d.Tail.Count)*DirLeafEntrySize
		d.Leaf = make([]DirLeafEntry, d.Tail.Count)
		for i := range d.Leaf {
			o := end + i*DirLeafEntrySize
			d.Leaf[i] = DirLeafEntry{be.Uint32(buf[o:]), be.Uint32(buf[o+4:])}
		}
	}
	for p := Dir3DataHdrSize; p < end; {
		if p+4 > end {
			return d, Corrupt(st, "", "entry", "%d stray bytes at offset %d before the end of the data area at %d", end-p, p, end)
		}
		if be.Uint16(buf[p:]) == DirDataFreeTag {
			l := int(be.Uint16(buf[p+2:]))
			if l < DirDataAlign || l%DirDataAlign != 0 || p+l > end {
				return d, Corrupt(st, "", "unused", "free region at offset %d has length %d (data area ends at %d)", p, l, end)
			}
			d.Unused = append(d.Unused, DirDataUnused{Off: p, Length: uint16(l), Tag: be.Uint16(buf[p+l-2:])})
			p += l
			continue
		}
		if p+9 > end {
			return d, Corrupt(st, "", "entry", "entry at offset %d runs past the data area end %d", p, end)
		}
		nl := int(buf[p+8])
		sz := DirDataEntSize(nl, ftype)
		if p+sz > end {
			return d, Corrupt(st, "", "entry", "entry at offset %d (%d-byte name) runs past the data area end %d", p, nl, end)
		}
		e := DirDataEntry{Off: p, Ino: be.Uint64(buf[p:]), Name: buf[p+9 : p+9+nl], Tag: be.Uint16(buf[p+sz-2:])}
		if ftype {
			e.FType = buf[p+9+nl]
		}
		d.Entries = append(d.Entries, e)
		p += sz
	}
	return d, nil
}

// Encode writes the block into buf (a whole directory block): header,
// entries and free regions at their offsets, and for the single-block form
// the leaf entries and tail (Tail.Count is taken from len(Leaf)); bytes not
// covered are zeroed. The CRC is sealed.
func (d *DirData) Encode(buf []byte, ftype bool) error {
	st := DirBlockName(d.Hdr.Magic)
	if len(buf) < Dir3DataHdrSize {
		return fmt.Errorf("%s: buffer of %d bytes", st, len(buf))
	}
	clear(buf)
	d.Hdr.encode(buf)
	be := binary.BigEndian
	for i, f := range d.BestFree {
		be.PutUint16(buf[48+4*i:], f.Offset)
		be.PutUint16(buf[50+4*i:], f.Length)
	}
	be.PutUint32(buf[60:], d.Pad)
	end := len(buf)
	if d.IsBlock() {
		end = len(buf) - DirBlockTailSize - len(d.Leaf)*DirLeafEntrySize
		if end < Dir3DataHdrSize {
			return fmt.Errorf("%s: %d leaf entries do not fit", st, len(d.Leaf))
		}
		d.Tail.Count = uint32(len(d.Leaf))
		for i, l := range d.Leaf {
			be.PutUint32(buf[end+8*i:], l.Hashval)
			be.PutUint32(buf[end+8*i+4:], l.Address)
		}
		be.PutUint32(buf[len(buf)-8:], d.Tail.Count)
		be.PutUint32(buf[len(buf)-4:], d.Tail.Stale)
	}
	for _, e := range d.Entries {
		sz := DirDataEntSize(len(e.Name), ftype)
		if e.Off < Dir3DataHdrSize || e.Off+sz > end || len(e.Name) > DirMaxNameLen {
			return fmt.Errorf("%s: entry %q at offset %d does not fit in the data area (ends at %d)", st, e.Name, e.Off, end)
		}
		be.PutUint64(buf[e.Off:], e.Ino)
		buf[e.Off+8] = uint8(len(e.Name))
		copy(buf[e.Off+9:], e.Name)
		if ftype {
			buf[e.Off+9+len(e.Name)] = e.FType
		}
		be.PutUint16(buf[e.Off+sz-2:], tagOr(e.Tag, e.Off))
	}
	for _, u := range d.Unused {
		if u.Off < Dir3DataHdrSize || u.Length < DirDataAlign || u.Off+int(u.Length) > end {
			return fmt.Errorf("%s: free region at offset %d length %d does not fit in the data area (ends at %d)", st, u.Off, u.Length, end)
		}
		be.PutUint16(buf[u.Off:], DirDataFreeTag)
		be.PutUint16(buf[u.Off+2:], u.Length)
		be.PutUint16(buf[u.Off+int(u.Length)-2:], tagOr(u.Tag, u.Off))
	}
	SetCRC(buf, Dir3CRCOff)
	d.Hdr.CRC = StoredCRC(buf, Dir3CRCOff)
	return nil
}

func tagOr(tag uint16, off int) uint16 {
	if tag == 0 {
		return uint16(off)
	}
	return tag
}

// VerifyDirData checks a whole data (magic Dir3DataMagic) or single-block
// (Dir3BlockMagic) directory block read from daddr for directory inode
// owner: header identity and CRC; entries with valid names, inode numbers,
// file types and tags pointing back at themselves; no two adjacent free
// regions; bestfree slots sorted, each naming a real free region, and no
// larger unlisted region; and for the single-block form leaf entries in
// hash order whose live addresses point at entries with that hash, with
// stale and live counts matching.
func VerifyDirData(buf []byte, magic uint32, sb *Superblock, daddr, owner uint64, where string) (*DirData, error) {
	if err := verifyDir3BlkHdr(buf, magic, sb.MetaUUIDOrUUID(), daddr, owner, where); err != nil {
		return nil, err
	}
	g := NewDirGeo(sb)
	d, err := DecodeDirData(buf, g.FType)
	if err != nil {
		return d, withWhere(err, where)
	}
	st := DirBlockName(magic)
	c := func(field, f string, a ...any) error { return Corrupt(st, where, field, f, a...) }
	// Merge entries and free regions back into block order for adjacency.
	ei, ui := 0, 0
	prevFree := false
	byOff := make(map[int]int, len(d.Entries))
	for ei < len(d.Entries) || ui < len(d.Unused) {
		if ui < len(d.Unused) && (ei >= len(d.Entries) || d.Unused[ui].Off < d.Entries[ei].Off) {
			u := d.Unused[ui]
			if prevFree {
				return d, c("unused", "free region at offset %d follows another free region", u.Off)
			}
			if int(u.Tag) != u.Off {
				return d, c("unused", "free region at offset %d has tag %d", u.Off, u.Tag)
			}
			prevFree = true
			ui++
			continue
		}
		e := d.Entries[ei]
		prevFree = false
		if !DirNameValid(e.Name) {
			return d, c("name", "entry at offset %d has invalid name %q", e.Off, e.Name)
		}
		if int(e.Tag) != e.Off {
			return d, c("tag", "entry %q at offset %d has tag %d", e.Name, e.Off, e.Tag)
		}
		if !dirInoValid(sb, e.Ino) {
			return d, c("inumber", "entry %q at offset %d: invalid inode %d", e.Name, e.Off, e.Ino)
		}
		if g.FType && e.FType >= DirFTMax {
			return d, c("ftype", "entry %q at offset %d: file type %d", e.Name, e.Off, e.FType)
		}
		byOff[e.Off] = ei
		ei++
	}
	if err := checkBestFree(d, c); err != nil {
		return d, err
	}
	if !d.IsBlock() {
		return d, nil
	}
	var stale uint32
	for i, l := range d.Leaf {
		if i > 0 && l.Hashval < d.Leaf[i-1].Hashval {
			return d, c("leaf", "entry %d hash 0x%08x below entry %d hash 0x%08x", i, l.Hashval, i-1, d.Leaf[i-1].Hashval)
		}
		if l.Address == DirNullDataptr {
			stale++
			continue
		}
		off := g.DataptrToOff(l.Address)
		ei, ok := byOff[off]
		if g.DataptrToDB(l.Address) != 0 || !ok {
			return d, c("leaf", "entry %d address 0x%x names no entry of this block", i, l.Address)
		}
		if h := DirHash(sb, d.Entries[ei].Name); h != l.Hashval {
			return d, c("leaf", "entry %d hash 0x%08x, but %q at offset %d hashes to 0x%08x", i, l.Hashval, d.Entries[ei].Name, off, h)
		}
	}
	if stale != d.Tail.Stale {
		return d, c("tail stale", "%d, but %d leaf entries are stale", d.Tail.Stale, stale)
	}
	if live := int(d.Tail.Count - stale); live != len(d.Entries) {
		return d, c("tail count", "%d live leaf entries for %d data entries", live, len(d.Entries))
	}
	return d, nil
}

func checkBestFree(d *DirData, c func(field, f string, a ...any) error) error {
	bf := d.BestFree
	for i := range bf {
		if bf[i].Length == 0 && bf[i].Offset != 0 {
			return c("bestfree", "slot %d has offset %d but no length", i, bf[i].Offset)
		}
		if i > 0 && bf[i].Length > bf[i-1].Length {
			return c("bestfree", "slot %d length %d exceeds slot %d length %d", i, bf[i].Length, i-1, bf[i-1].Length)
		}
	}
	var seen [DirDataFDCount]bool
	for _, u := range d.Unused {
		found := -1
		for i := range bf {
			if bf[i].Length != 0 && int(bf[i].Offset) == u.Off {
				found = i
			}
		}
		if found >= 0 {
			if bf[found].Length != u.Length {
				return c("bestfree", "slot %d says length %d, free region at offset %d has %d", found, bf[found].Length, u.Off, u.Length)
			}
			seen[found] = true
		} else if u.Length > bf[DirDataFDCount-1].Length {
			return c("bestfree", "free region at offset %d of length %d is missing from bestfree", u.Off, u.Length)
		}
	}
	for i := range bf {
		if bf[i].Length != 0 && !seen[i] {
			return c("bestfree", "slot %d (offset %d length %d) names no free region", i, bf[i].Offset, bf[i].Length)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Leaf blocks (leaf1: single leaf of a leaf-form directory; leafn: leaves of
// a node-form directory).

// Dir3Leaf is a decoded leaf1 or leafn block.
type Dir3Leaf struct {
	Info  DA3BlkInfo
	Count uint16
	Stale uint16
	Pad   uint32
	Ents  []DirLeafEntry
	// Leaf1 only: best free length of each data block, indexed by data
	// block number (DirNullDataOff for a missing block).
	Bests []uint16
}

// IsLeaf1 reports the single-leaf form with bests and tail.
func (l *Dir3Leaf) IsLeaf1() bool { return l.Info.Magic == Dir3Leaf1Magic }

// DecodeDir3Leaf decodes a whole leaf1 or leafn block.
func DecodeDir3Leaf(buf []byte) (*Dir3Leaf, error) {
	if len(buf) < Dir3LeafHdrSize {
		return nil, shortErr("dir3 leaf block", len(buf), Dir3LeafHdrSize)
	}
	info, _ := DecodeDA3BlkInfo(buf)
	be := binary.BigEndian
	l := &Dir3Leaf{Info: info, Count: be.Uint16(buf[56:]), Stale: be.Uint16(buf[58:]), Pad: be.Uint32(buf[60:])}
	st := DAName(info.Magic)
	if info.Magic != Dir3Leaf1Magic && info.Magic != Dir3LeafNMagic {
		return l, Corrupt(st, "", "magic", "not a directory leaf block")
	}
	end := len(buf)
	if l.IsLeaf1() {
		if len(buf) < Dir3LeafHdrSize+DirLeafTailSize {
			return l, shortErr(st, len(buf), Dir3LeafHdrSize+DirLeafTailSize)
		}
		bc := be.Uint32(buf[len(buf)-4:])
		if uint64(bc)*2 > uint64(len(buf)-Dir3LeafHdrSize-DirLeafTailSize) {
			return l, Corrupt(st, "", "bestcount", "%d bests do not fit in a %d-byte block", bc, len(buf))
		}
		end = len(buf) - DirLeafTailSize - int(bc)*2
		l.Bests = make([]uint16, bc)
		for i := range l.Bests {
			l.Bests[i] = be.Uint16(buf[end+2*i:])
		}
	}
	if Dir3LeafHdrSize+int(l.Count)*DirLeafEntrySize > end {
		return l, Corrupt(st, "", "count", "%d entries overrun the entry area ending at %d", l.Count, end)
	}
	l.Ents = make([]DirLeafEntry, l.Count)
	for i := range l.Ents {
		o := Dir3LeafHdrSize + i*DirLeafEntrySize
		l.Ents[i] = DirLeafEntry{be.Uint32(buf[o:]), be.Uint32(buf[o+4:])}
	}
	return l, nil
}

// Encode writes the leaf into buf (a whole directory block) with Count from
// len(Ents) and, for leaf1, the bests and tail; the CRC is sealed.
func (l *Dir3Leaf) Encode(buf []byte) error {
	st := DAName(l.Info.Magic)
	end := len(buf)
	if l.IsLeaf1() {
		end -= DirLeafTailSize + 2*len(l.Bests)
	}
	if Dir3LeafHdrSize+len(l.Ents)*DirLeafEntrySize > end {
		return fmt.Errorf("%s: %d entries and %d bests do not fit in %d bytes", st, len(l.Ents), len(l.Bests), len(buf))
	}
	clear(buf)
	l.Count = uint16(len(l.Ents))
	l.Info.Encode(buf)
	be := binary.BigEndian
	be.PutUint16(buf[56:], l.Count)
	be.PutUint16(buf[58:], l.Stale)
	be.PutUint32(buf[60:], l.Pad)
	for i, e := range l.Ents {
		o := Dir3LeafHdrSize + i*DirLeafEntrySize
		be.PutUint32(buf[o:], e.Hashval)
		be.PutUint32(buf[o+4:], e.Address)
	}
	if l.IsLeaf1() {
		for i, b := range l.Bests {
			be.PutUint16(buf[end+2*i:], b)
		}
		be.PutUint32(buf[len(buf)-4:], uint32(len(l.Bests)))
	}
	SealDA3Block(buf)
	l.Info.CRC = StoredCRC(buf, DA3CRCOff)
	return nil
}

// VerifyDir3Leaf checks a leaf1 or leafn block (by magic): header identity
// and CRC, entries within the block, hashes in order, stale count matching
// the null addresses, and live addresses inside the data space.
func VerifyDir3Leaf(buf []byte, magic uint16, sb *Superblock, daddr, owner uint64, where string) (*Dir3Leaf, error) {
	if _, err := VerifyDA3BlkInfo(buf, magic, sb.MetaUUIDOrUUID(), daddr, owner, where); err != nil {
		return nil, err
	}
	l, err := DecodeDir3Leaf(buf)
	if err != nil {
		return l, withWhere(err, where)
	}
	g := NewDirGeo(sb)
	c := func(field, f string, a ...any) error { return Corrupt(DAName(magic), where, field, f, a...) }
	var stale int
	for i, e := range l.Ents {
		if i > 0 && e.Hashval < l.Ents[i-1].Hashval {
			return l, c("ents", "entry %d hash 0x%08x below entry %d hash 0x%08x", i, e.Hashval, i-1, l.Ents[i-1].Hashval)
		}
		if e.Address == DirNullDataptr {
			stale++
		} else if g.DataptrToDB(e.Address) >= g.LeafDB {
			return l, c("ents", "entry %d address 0x%x lies outside the data space", i, e.Address)
		}
	}
	if stale != int(l.Stale) {
		return l, c("stale", "%d, but %d entries are stale", l.Stale, stale)
	}
	return l, nil
}

// ---------------------------------------------------------------------------
// Free index blocks.

// Dir3Free is a decoded free index block: the best free length of data
// blocks FirstDB .. FirstDB+NValid-1.
type Dir3Free struct {
	Hdr     Dir3BlkHdr
	FirstDB uint32
	NValid  uint32
	NUsed   uint32
	Pad     uint32
	Bests   []uint16 // NValid entries; DirNullDataOff for missing blocks
}

// DecodeDir3Free decodes a whole free index block.
func DecodeDir3Free(buf []byte) (*Dir3Free, error) {
	const st = "dir3 free block"
	if len(buf) < Dir3FreeHdrSize {
		return nil, shortErr(st, len(buf), Dir3FreeHdrSize)
	}
	be := binary.BigEndian
	f := &Dir3Free{Hdr: decodeDir3BlkHdr(buf), FirstDB: be.Uint32(buf[48:]), NValid: be.Uint32(buf[52:]),
		NUsed: be.Uint32(buf[56:]), Pad: be.Uint32(buf[60:])}
	if uint64(f.NValid) > uint64((len(buf)-Dir3FreeHdrSize)/2) {
		return f, Corrupt(st, "", "nvalid", "%d bests do not fit in a %d-byte block", f.NValid, len(buf))
	}
	f.Bests = make([]uint16, f.NValid)
	for i := range f.Bests {
		f.Bests[i] = be.Uint16(buf[Dir3FreeHdrSize+2*i:])
	}
	return f, nil
}

// Encode writes the block with NValid from len(Bests) and seals the CRC.
// NUsed is written as given.
func (f *Dir3Free) Encode(buf []byte) error {
	if Dir3FreeHdrSize+2*len(f.Bests) > len(buf) {
		return fmt.Errorf("dir3 free block: %d bests do not fit in %d bytes", len(f.Bests), len(buf))
	}
	clear(buf)
	f.Hdr.Magic = Dir3FreeMagic
	f.Hdr.encode(buf)
	f.NValid = uint32(len(f.Bests))
	be := binary.BigEndian
	be.PutUint32(buf[48:], f.FirstDB)
	be.PutUint32(buf[52:], f.NValid)
	be.PutUint32(buf[56:], f.NUsed)
	be.PutUint32(buf[60:], f.Pad)
	for i, b := range f.Bests {
		be.PutUint16(buf[Dir3FreeHdrSize+2*i:], b)
	}
	SetCRC(buf, Dir3CRCOff)
	f.Hdr.CRC = StoredCRC(buf, Dir3CRCOff)
	return nil
}

// VerifyDir3Free checks header identity and CRC, that FirstDB starts a
// free-block range, and that NUsed counts the present data blocks. If fdb
// (the block's own number in the free space, 0-based) is >= 0 FirstDB must
// match it.
func VerifyDir3Free(buf []byte, sb *Superblock, daddr, owner uint64, fdb int, where string) (*Dir3Free, error) {
	if err := verifyDir3BlkHdr(buf, Dir3FreeMagic, sb.MetaUUIDOrUUID(), daddr, owner, where); err != nil {
		return nil, err
	}
	f, err := DecodeDir3Free(buf)
	if err != nil {
		return f, withWhere(err, where)
	}
	c := func(field, f string, a ...any) error { return Corrupt("dir3 free block", where, field, f, a...) }
	maxb := uint32(NewDirGeo(sb).FreeMaxBests())
	if f.FirstDB%maxb != 0 {
		return f, c("firstdb", "%d is not a multiple of %d", f.FirstDB, maxb)
	}
	if fdb >= 0 && uint64(f.FirstDB) != uint64(fdb)*uint64(maxb) {
		return f, c("firstdb", "%d, expected %d for free block %d", f.FirstDB, uint64(fdb)*uint64(maxb), fdb)
	}
	var used uint32
	for _, b := range f.Bests {
		if b != DirNullDataOff {
			used++
		}
	}
	if used != f.NUsed {
		return f, c("nused", "%d, but %d bests name data blocks", f.NUsed, used)
	}
	return f, nil
}
