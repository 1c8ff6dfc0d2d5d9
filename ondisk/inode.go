package ondisk

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Inode layout facts.
const (
	DinodeMagic      = 0x494e // "IN"
	DinodeCRCOff     = 100    // di_crc, start of the v3 extension
	DinodeV2CoreSize = 100    // v1/v2 core: up to and including di_next_unlinked
	DinodeV3CoreSize = 176    // v3 core: up to and including di_uuid
	DinodeMinSize    = 256
	DinodeMaxSize    = 2048
)

// Data and attribute fork formats (di_format, di_aformat).
const (
	FmtDev     = 0 // device number in the data fork
	FmtLocal   = 1 // data inline in the fork
	FmtExtents = 2 // array of packed bmbt records
	FmtBtree   = 3 // bmdr root of a bmbt
	FmtUUID    = 4 // defined long ago, never used
)

// FormatName names a fork format for messages.
func FormatName(f uint8) string {
	switch f {
	case FmtDev:
		return "dev"
	case FmtLocal:
		return "local"
	case FmtExtents:
		return "extents"
	case FmtBtree:
		return "btree"
	case FmtUUID:
		return "uuid"
	}
	return fmt.Sprintf("format(%d)", f)
}

// di_flags bits.
const (
	DiflagRealtime     = 1 << 0  // data blocks live on the realtime device
	DiflagPrealloc     = 1 << 1  // space was preallocated
	DiflagNewRTBM      = 1 << 2  // realtime bitmap inode, new format
	DiflagImmutable    = 1 << 3  // chattr +i
	DiflagAppend       = 1 << 4  // chattr +a
	DiflagSync         = 1 << 5  // chattr +S
	DiflagNoatime      = 1 << 6  // chattr +A
	DiflagNodump       = 1 << 7  // chattr +d
	DiflagRTInherit    = 1 << 8  // new files get DiflagRealtime
	DiflagProjInherit  = 1 << 9  // new files get the parent's project id
	DiflagNoSymlinks   = 1 << 10 // no symlink creation in this directory
	DiflagExtSize      = 1 << 11 // di_extsize is an allocation hint
	DiflagExtSzInherit = 1 << 12 // new files inherit di_extsize
	DiflagNoDefrag     = 1 << 13 // do not defragment
	DiflagFilestream   = 1 << 14 // filestream allocator
	DiflagAny          = 1<<15 - 1
)

// di_flags2 bits (v3 inodes).
const (
	Diflag2DAX        = 1 << 0 // direct access
	Diflag2Reflink    = 1 << 1 // blocks may be shared
	Diflag2CowExtSize = 1 << 2 // di_cowextsize is a hint
	Diflag2Bigtime    = 1 << 3 // 64-bit nanosecond timestamps
	Diflag2Nrext64    = 1 << 4 // large extent counters
	Diflag2Any        = 1<<5 - 1
)

// File type bits of di_mode (as in Linux S_IFMT).
const (
	ModeTypeMask = 0o170000
	ModeFIFO     = 0o010000
	ModeChar     = 0o020000
	ModeDir      = 0o040000
	ModeBlock    = 0o060000
	ModeReg      = 0o100000
	ModeSymlink  = 0o120000
	ModeSocket   = 0o140000
)

// Extent counter limits (xfs_format.h XFS_MAX_EXTCNT_*).
const (
	MaxExtCntDataSmall = 1<<31 - 1
	MaxExtCntAttrSmall = 1<<15 - 1
	MaxExtCntDataLarge = 1<<48 - 1
	MaxExtCntAttrLarge = 1<<32 - 1
)

// Timestamp limits and the bigtime epoch: bigtime counts nanoseconds from
// the smallest classic timestamp, 2^31 s before the Unix epoch.
const (
	BigtimeEpochOffset = 1 << 31
	LegacyTimeMin      = -1 << 31
	LegacyTimeMax      = 1<<31 - 1
	// BigtimeTimeMax is the largest on-disk seconds value, rounded down so
	// inode and quota limits agree (2486-07-02 20:20:24 UTC after conversion).
	BigtimeTimeMax = (^uint64(0) / 1e9) &^ 3
)

// Timestamp is an inode time as seconds since the Unix epoch plus
// nanoseconds. Nsec is kept as stored (a corrupt classic timestamp may hold
// 1e9 or more) so that Encode reproduces the bytes exactly.
type Timestamp struct {
	Sec  int64
	Nsec uint32
}

// Time converts to a Go time in UTC.
func (t Timestamp) Time() time.Time { return time.Unix(t.Sec, int64(t.Nsec)).UTC() }

// TimestampOf converts a Go time.
func TimestampOf(t time.Time) Timestamp {
	return Timestamp{Sec: t.Unix(), Nsec: uint32(t.Nanosecond())}
}

// DecodeTimestamp decodes the raw big-endian 64-bit timestamp word.
func DecodeTimestamp(raw uint64, bigtime bool) Timestamp {
	if bigtime {
		return Timestamp{Sec: int64(raw/1e9) - BigtimeEpochOffset, Nsec: uint32(raw % 1e9)}
	}
	return Timestamp{Sec: int64(int32(raw >> 32)), Nsec: uint32(raw)}
}

// Encode returns the raw 64-bit timestamp word. Out-of-range times are
// clamped to the format's limits, as the kernel does.
func (t Timestamp) Encode(bigtime bool) uint64 {
	if bigtime {
		sec := t.Sec + BigtimeEpochOffset
		if sec < 0 {
			return 0
		}
		// Anything a 64-bit nanosecond counter holds is kept exactly (it
		// came from disk); only times past it are clamped, as the kernel does.
		ns := uint64(t.Nsec % 1e9)
		if uint64(sec) > (^uint64(0)-ns)/1e9 {
			return BigtimeTimeMax * 1e9
		}
		return uint64(sec)*1e9 + ns
	}
	sec := t.Sec
	if sec < LegacyTimeMin {
		sec = LegacyTimeMin
	} else if sec > LegacyTimeMax {
		sec = LegacyTimeMax
	}
	return uint64(uint32(int32(sec)))<<32 | uint64(t.Nsec)
}

// Dinode is the decoded inode core (struct xfs_dinode). The literal area
// after the core holds the data and attribute forks; see Forks.
type Dinode struct {
	Magic     uint16
	Mode      uint16
	Version   uint8
	Format    uint8
	OnLink    uint16 // v1 link count; zero on v2/v3
	UID       uint32
	GID       uint32
	NLink     uint32 // v2/v3 link count
	ProjIDLo  uint16
	ProjIDHi  uint16
	FlushIter uint16 // v1/v2 only
	// Pad24 holds whatever bits of the 8 bytes at offset 24 are padding
	// for this inode's layout (all 64 on v3 without nrext64, the top 48 on
	// v1/v2, none with nrext64); they must be zero.
	Pad24        uint64
	Atime        Timestamp
	Mtime        Timestamp
	Ctime        Timestamp
	Size         uint64
	NBlocks      uint64
	ExtSize      uint32
	NExtents     uint64 // data fork extents (di_nextents or di_big_nextents)
	ANExtents    uint32 // attr fork extents (di_anextents or di_big_anextents)
	Nrext64Pad   uint16 // di_nrext64_pad, only with nrext64
	ForkOff      uint8  // attr fork offset in 8-byte units, 0 = no attr fork
	AFormat      uint8
	DMEvMask     uint32
	DMState      uint16
	Flags        uint16
	Gen          uint32
	NextUnlinked uint32
	// v3 fields.
	CRC         uint32
	ChangeCount uint64
	LSN         uint64
	Flags2      uint64
	CowExtSize  uint32
	Pad2        [12]byte
	Crtime      Timestamp
	Ino         uint64
	UUID        UUID
}

// DecodeDinode decodes the core of the inode in buf. buf should hold the
// whole inode (sb inode size) so that Forks and Verify can use it.
func DecodeDinode(buf []byte) (*Dinode, error) {
	if len(buf) < DinodeV2CoreSize {
		return nil, shortErr("inode", len(buf), DinodeV2CoreSize)
	}
	be := binary.BigEndian
	d := &Dinode{}
	d.Magic = be.Uint16(buf[0:])
	d.Mode = be.Uint16(buf[2:])
	d.Version = buf[4]
	d.Format = buf[5]
	if d.Version >= 3 && len(buf) < DinodeV3CoreSize {
		return nil, shortErr("inode", len(buf), DinodeV3CoreSize)
	}
	d.OnLink = be.Uint16(buf[6:])
	d.UID = be.Uint32(buf[8:])
	d.GID = be.Uint32(buf[12:])
	d.NLink = be.Uint32(buf[16:])
	d.ProjIDLo = be.Uint16(buf[20:])
	d.ProjIDHi = be.Uint16(buf[22:])
	if d.Version >= 3 {
		d.Flags2 = be.Uint64(buf[120:])
	}
	nrext64 := d.HasNrext64()
	w24 := be.Uint64(buf[24:])
	switch {
	case nrext64:
		d.NExtents = w24
		d.ANExtents = be.Uint32(buf[76:])
		d.Nrext64Pad = be.Uint16(buf[80:])
	case d.Version >= 3:
		d.Pad24 = w24
		d.NExtents = uint64(be.Uint32(buf[76:]))
		d.ANExtents = uint32(be.Uint16(buf[80:]))
	default:
		d.Pad24 = w24 &^ 0xffff
		d.FlushIter = uint16(w24)
		d.NExtents = uint64(be.Uint32(buf[76:]))
		d.ANExtents = uint32(be.Uint16(buf[80:]))
	}
	bt := d.HasBigtime()
	d.Atime = DecodeTimestamp(be.Uint64(buf[32:]), bt)
	d.Mtime = DecodeTimestamp(be.Uint64(buf[40:]), bt)
	d.Ctime = DecodeTimestamp(be.Uint64(buf[48:]), bt)
	d.Size = be.Uint64(buf[56:])
	d.NBlocks = be.Uint64(buf[64:])
	d.ExtSize = be.Uint32(buf[72:])
	d.ForkOff = buf[82]
	d.AFormat = buf[83]
	d.DMEvMask = be.Uint32(buf[84:])
	d.DMState = be.Uint16(buf[88:])
	d.Flags = be.Uint16(buf[90:])
	d.Gen = be.Uint32(buf[92:])
	d.NextUnlinked = be.Uint32(buf[96:])
	if d.Version < 3 {
		return d, nil
	}
	d.CRC = binary.LittleEndian.Uint32(buf[100:])
	d.ChangeCount = be.Uint64(buf[104:])
	d.LSN = be.Uint64(buf[112:])
	d.CowExtSize = be.Uint32(buf[128:])
	copy(d.Pad2[:], buf[132:144])
	d.Crtime = DecodeTimestamp(be.Uint64(buf[144:]), bt)
	d.Ino = be.Uint64(buf[152:])
	copy(d.UUID[:], buf[160:176])
	return d, nil
}

// Encode writes the core into buf, which must hold the whole inode (the
// literal area is left as is). For v3 inodes the CRC is computed over all
// of buf and stored in d.CRC.
func (d *Dinode) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint16(buf[0:], d.Magic)
	be.PutUint16(buf[2:], d.Mode)
	buf[4] = d.Version
	buf[5] = d.Format
	be.PutUint16(buf[6:], d.OnLink)
	be.PutUint32(buf[8:], d.UID)
	be.PutUint32(buf[12:], d.GID)
	be.PutUint32(buf[16:], d.NLink)
	be.PutUint16(buf[20:], d.ProjIDLo)
	be.PutUint16(buf[22:], d.ProjIDHi)
	switch {
	case d.HasNrext64():
		be.PutUint64(buf[24:], d.NExtents)
		be.PutUint32(buf[76:], d.ANExtents)
		be.PutUint16(buf[80:], d.Nrext64Pad)
	case d.Version >= 3:
		be.PutUint64(buf[24:], d.Pad24)
		be.PutUint32(buf[76:], uint32(d.NExtents))
		be.PutUint16(buf[80:], uint16(d.ANExtents))
	default:
		be.PutUint64(buf[24:], d.Pad24&^0xffff|uint64(d.FlushIter))
		be.PutUint32(buf[76:], uint32(d.NExtents))
		be.PutUint16(buf[80:], uint16(d.ANExtents))
	}
	bt := d.HasBigtime()
	be.PutUint64(buf[32:], d.Atime.Encode(bt))
	be.PutUint64(buf[40:], d.Mtime.Encode(bt))
	be.PutUint64(buf[48:], d.Ctime.Encode(bt))
	be.PutUint64(buf[56:], d.Size)
	be.PutUint64(buf[64:], d.NBlocks)
	be.PutUint32(buf[72:], d.ExtSize)
	buf[82] = d.ForkOff
	buf[83] = d.AFormat
	be.PutUint32(buf[84:], d.DMEvMask)
	be.PutUint16(buf[88:], d.DMState)
	be.PutUint16(buf[90:], d.Flags)
	be.PutUint32(buf[92:], d.Gen)
	be.PutUint32(buf[96:], d.NextUnlinked)
	if d.Version < 3 {
		return
	}
	be.PutUint64(buf[104:], d.ChangeCount)
	be.PutUint64(buf[112:], d.LSN)
	be.PutUint64(buf[120:], d.Flags2)
	be.PutUint32(buf[128:], d.CowExtSize)
	copy(buf[132:144], d.Pad2[:])
	be.PutUint64(buf[144:], d.Crtime.Encode(bt))
	be.PutUint64(buf[152:], d.Ino)
	copy(buf[160:176], d.UUID[:])
	SetCRC(buf, DinodeCRCOff)
	d.CRC = StoredCRC(buf, DinodeCRCOff)
}

// HasBigtime reports 64-bit nanosecond timestamps (v3 with the flag).
func (d *Dinode) HasBigtime() bool { return d.Version >= 3 && d.Flags2&Diflag2Bigtime != 0 }

// HasNrext64 reports large extent counters (v3 with the flag).
func (d *Dinode) HasNrext64() bool { return d.Version >= 3 && d.Flags2&Diflag2Nrext64 != 0 }

// CoreSize is the size of this inode's core (where the literal area starts).
func (d *Dinode) CoreSize() int {
	if d.Version >= 3 {
		return DinodeV3CoreSize
	}
	return DinodeV2CoreSize
}

// ProjID joins the two halves of the project id.
func (d *Dinode) ProjID() uint32 { return uint32(d.ProjIDHi)<<16 | uint32(d.ProjIDLo) }

// Links is the link count from the field this version uses.
func (d *Dinode) Links() uint32 {
	if d.Version == 1 {
		return uint32(d.OnLink)
	}
	return d.NLink
}

// FileType returns the S_IFMT bits of the mode.
func (d *Dinode) FileType() uint16 { return d.Mode & ModeTypeMask }

func (d *Dinode) IsDir() bool     { return d.FileType() == ModeDir }
func (d *Dinode) IsReg() bool     { return d.FileType() == ModeReg }
func (d *Dinode) IsSymlink() bool { return d.FileType() == ModeSymlink }

// IsDevice reports a character or block device node.
func (d *Dinode) IsDevice() bool {
	t := d.FileType()
	return t == ModeChar || t == ModeBlock
}

// Free reports an unallocated inode (mode zero).
func (d *Dinode) Free() bool { return d.Mode == 0 }

// ForkOffBytes is the attr fork offset from the start of the literal area.
func (d *Dinode) ForkOffBytes() int { return int(d.ForkOff) << 3 }

// DataForkSize and AttrForkSize give the fork sizes for an inode of
// inodeSize bytes (XFS_DFORK_DSIZE / XFS_DFORK_ASIZE).
func (d *Dinode) DataForkSize(inodeSize int) int {
	if d.ForkOff != 0 {
		return d.ForkOffBytes()
	}
	return inodeSize - d.CoreSize()
}

func (d *Dinode) AttrForkSize(inodeSize int) int {
	if d.ForkOff != 0 {
		return inodeSize - d.CoreSize() - d.ForkOffBytes()
	}
	return 0
}

// Forks slices buf (the whole inode) into data and attr fork bytes. The
// attr fork is nil when ForkOff is zero.
func (d *Dinode) Forks(buf []byte) (data, attr []byte, err error) {
	core := d.CoreSize()
	if len(buf) <= core {
		return nil, nil, shortErr("inode", len(buf), core+1)
	}
	lit := buf[core:]
	if d.ForkOff == 0 {
		return lit, nil, nil
	}
	off := d.ForkOffBytes()
	if off >= len(lit) {
		return nil, nil, Corrupt("inode", "", "forkoff", "attr fork offset %d bytes lies beyond the %d-byte literal area", off, len(lit))
	}
	return lit[:off], lit[off:], nil
}

// ForkNextents is the extent count of one fork.
func (d *Dinode) ForkNextents(attr bool) uint64 {
	if attr {
		return uint64(d.ANExtents)
	}
	return d.NExtents
}

// ForkFormat is the format of one fork.
func (d *Dinode) ForkFormat(attr bool) uint8 {
	if attr {
		return d.AFormat
	}
	return d.Format
}

// MaxNextents is the largest extent count the fork's counter may hold.
func (d *Dinode) MaxNextents(attr bool) uint64 {
	switch {
	case attr && d.HasNrext64():
		return MaxExtCntAttrLarge
	case attr:
		return MaxExtCntAttrSmall
	case d.HasNrext64():
		return MaxExtCntDataLarge
	}
	return MaxExtCntDataSmall
}

// --- device numbers ---

// DecodeRdev returns the 32-bit device number at the start of a dev-format
// data fork.
func DecodeRdev(fork []byte) (uint32, error) {
	if len(fork) < 4 {
		return 0, shortErr("inode device fork", len(fork), 4)
	}
	return binary.BigEndian.Uint32(fork), nil
}

// EncodeRdev stores a device number at the start of a data fork.
func EncodeRdev(fork []byte, dev uint32) { binary.BigEndian.PutUint32(fork, dev) }

// XFS stores devices in the 32-bit sysv layout Linux uses for it:
// 14-bit major above an 18-bit minor.
const (
	DevMinorBits = 18
	DevMinorMask = 1<<DevMinorBits - 1
)

// DevMajor and DevMinor split an on-disk device number.
func DevMajor(dev uint32) uint32 { return dev >> DevMinorBits }
func DevMinor(dev uint32) uint32 { return dev & DevMinorMask }

// MakeDev joins major and minor into the on-disk form; false if either
// does not fit (Linux then refuses the mknod on XFS).
func MakeDev(major, minor uint32) (uint32, bool) {
	if major >= 1<<(32-DevMinorBits) || minor > DevMinorMask {
		return 0, false
	}
	return major<<DevMinorBits | minor, true
}

// --- in-inode bmbt root ---

// BmdrHdrSize is the size of the bmdr root header (level, numrecs).
const BmdrHdrSize = 4

// BmdrRoot is the bmbt root stored in an inode fork: keys (file offsets)
// and pointers (filesystem blocks) of its NumRecs children.
type BmdrRoot struct {
	Level   uint16
	NumRecs uint16
	Keys    []uint64
	Ptrs    []uint64
}

// BmdrMaxRecs is how many key/pointer pairs (node) or records (leaf) fit
// in a fork of forkSize bytes; the pointer array starts after that many keys.
func BmdrMaxRecs(forkSize int, leaf bool) int {
	n := forkSize - BmdrHdrSize
	if n < 0 {
		return 0
	}
	if leaf {
		return n / BmbtRecSize
	}
	return n / (BmbtKeySize + BmbtPtrSize)
}

// DecodeBmdr decodes the bmbt root in fork (the whole fork, since the
// pointer array is placed by the fork's capacity). where names the inode
// and fork for errors.
func DecodeBmdr(fork []byte, where string) (*BmdrRoot, error) {
	if len(fork) < BmdrHdrSize {
		return nil, Corrupt("bmbt root", where, "", "fork of %d bytes cannot hold the root header", len(fork))
	}
	be := binary.BigEndian
	r := &BmdrRoot{Level: be.Uint16(fork[0:]), NumRecs: be.Uint16(fork[2:])}
	if r.Level == 0 {
		return nil, Corrupt("bmbt root", where, "level", "root at level 0 (a leaf root belongs in extents format)")
	}
	if r.Level > BmbtMaxLevelsCap {
		return nil, Corrupt("bmbt root", where, "level", "level %d exceeds %d", r.Level, BmbtMaxLevelsCap)
	}
	maxr := BmdrMaxRecs(len(fork), false)
	if r.NumRecs == 0 || int(r.NumRecs) > maxr {
		return nil, Corrupt("bmbt root", where, "numrecs", "%d records, fork holds 1 to %d", r.NumRecs, maxr)
	}
	n := int(r.NumRecs)
	r.Keys = make([]uint64, n)
	r.Ptrs = make([]uint64, n)
	pbase := BmdrHdrSize + maxr*BmbtKeySize
	for i := 0; i < n; i++ {
		r.Keys[i] = be.Uint64(fork[BmdrHdrSize+i*BmbtKeySize:])
		r.Ptrs[i] = be.Uint64(fork[pbase+i*BmbtPtrSize:])
	}
	return r, nil
}

// Encode writes the root into fork (the whole fork), zeroing unused space.
func (r *BmdrRoot) Encode(fork []byte) {
	clear(fork)
	be := binary.BigEndian
	be.PutUint16(fork[0:], r.Level)
	be.PutUint16(fork[2:], uint16(len(r.Keys)))
	maxr := BmdrMaxRecs(len(fork), false)
	pbase := BmdrHdrSize + maxr*BmbtKeySize
	for i := range r.Keys {
		be.PutUint64(fork[BmdrHdrSize+i*BmbtKeySize:], r.Keys[i])
		be.PutUint64(fork[pbase+i*BmbtPtrSize:], r.Ptrs[i])
	}
}

// --- verification ---

// Verify checks the inode in buf (the whole inode, as decoded into d)
// against inode number ino and the superblock, like the kernel's dinode
// verifier: magic, version, CRC, self number, UUID, mode/format pairs,
// fork offset and sizes, extent counts against fork capacity, flag
// consistency and feature-dependent flags. Free inodes (mode 0) pass the
// checks that only apply to files.
func (d *Dinode) Verify(buf []byte, ino uint64, sb *Superblock) error {
	where := fmt.Sprintf("inode %d", ino)
	c := func(field, f string, a ...any) error { return Corrupt("inode", where, field, f, a...) }
	if d.Magic != DinodeMagic {
		return c("magic", "bad magic 0x%04x", d.Magic)
	}
	isize := int(sb.InodeSize)
	if len(buf) != isize {
		return c("", "buffer of %d bytes for a %d-byte inode", len(buf), isize)
	}
	switch {
	case d.Version == 3:
		if !sb.IsV5() {
			return c("version", "v3 inode on a v%d filesystem", sb.Version())
		}
	case d.Version == 1 || d.Version == 2:
		if sb.IsV5() {
			return c("version", "v%d inode on a v5 filesystem", d.Version)
		}
	default:
		return c("version", "unknown inode version %d", d.Version)
	}
	if d.Version >= 3 {
		if !CRCOK(buf, DinodeCRCOff) {
			return c("crc", "checksum mismatch (stored 0x%08x, computed 0x%08x)", StoredCRC(buf, DinodeCRCOff), CRC32c(buf, DinodeCRCOff))
		}
		if d.Ino != ino {
			return c("ino", "inode claims number %d", d.Ino)
		}
		if u := sb.MetaUUIDOrUUID(); d.UUID != u {
			return c("uuid", "UUID %s does not match filesystem %s", d.UUID, u)
		}
	}
	if d.Version >= 2 && d.OnLink != 0 {
		return c("onlink", "v%d inode with old link count %d", d.Version, d.OnLink)
	}
	if d.Size>>63 != 0 {
		return c("size", "size %d is negative", int64(d.Size))
	}
	mode := d.FileType()
	switch mode {
	case 0:
		if d.Mode != 0 {
			return c("mode", "mode 0%o has no file type", d.Mode)
		}
	case ModeFIFO, ModeChar, ModeDir, ModeBlock, ModeReg, ModeSymlink, ModeSocket:
	default:
		return c("mode", "invalid file type in mode 0%o", d.Mode)
	}
	if (mode == ModeSymlink || mode == ModeDir) && d.Size == 0 && d.Links() != 0 {
		return c("size", "linked %s of size 0", typeName(mode))
	}
	if d.HasNrext64() {
		if !sb.HasNrext64() {
			return c("flags2", "nrext64 inode on a filesystem without large extent counters")
		}
		if d.Nrext64Pad != 0 {
			return c("nrext64_pad", "nonzero padding 0x%x", d.Nrext64Pad)
		}
	} else if d.Version >= 3 && d.Pad24 != 0 {
		return c("v3_pad", "nonzero padding 0x%x", d.Pad24)
	}
	if d.HasBigtime() && !sb.HasBigtime() {
		return c("flags2", "bigtime inode on a filesystem without bigtime")
	}
	if mode != 0 && d.NExtents+uint64(d.ANExtents) > d.NBlocks {
		return c("nblocks", "%d blocks cannot hold %d+%d extents", d.NBlocks, d.NExtents, d.ANExtents)
	}
	if d.NExtents+uint64(d.ANExtents) == 0 && d.NBlocks != 0 {
		return c("nblocks", "%d blocks but no extents", d.NBlocks)
	}
	lit := isize - d.CoreSize()
	if mode != 0 && d.ForkOffBytes() > isize {
		return c("forkoff", "attr fork offset %d beyond the inode", d.ForkOffBytes())
	}
	if d.Flags&^DiflagAny != 0 {
		return c("flags", "unknown flags 0x%x", d.Flags&^DiflagAny)
	}
	if mode != 0 && d.Flags&DiflagRealtime != 0 && sb.RBlocks == 0 {
		return c("flags", "realtime file on a filesystem without a realtime device")
	}
	if d.ForkOff != 0 {
		switch d.Format {
		case FmtDev:
			if d.ForkOff != 1 {
				return c("forkoff", "device inode with attr fork offset %d (expected 1)", d.ForkOff)
			}
		case FmtLocal, FmtExtents, FmtBtree:
			if d.ForkOffBytes() >= lit {
				return c("forkoff", "attr fork offset %d bytes leaves no attr fork in a %d-byte literal area", d.ForkOffBytes(), lit)
			}
		default:
			return c("format", "invalid data fork format %s", FormatName(d.Format))
		}
	}
	switch mode {
	case ModeFIFO, ModeChar, ModeBlock, ModeSocket:
		if d.Format != FmtDev {
			return c("format", "%s with data fork format %s", typeName(mode), FormatName(d.Format))
		}
	case ModeReg, ModeSymlink, ModeDir:
		if err := d.verifyFork(false, isize, sb, c); err != nil {
			return err
		}
	}
	if d.ForkOff != 0 {
		if err := d.verifyFork(true, isize, sb, c); err != nil {
			return err
		}
	} else {
		if d.AFormat != 0 && d.AFormat != FmtExtents {
			return c("aformat", "attr fork format %s without an attr fork", FormatName(d.AFormat))
		}
		if d.ANExtents != 0 {
			return c("anextents", "%d attr extents without an attr fork", d.ANExtents)
		}
	}
	if err := d.verifyExtSize(sb, c); err != nil {
		return err
	}
	if d.Version < 3 {
		return nil
	}
	if d.Flags2&^Diflag2Any != 0 {
		return c("flags2", "unknown flags 0x%x", d.Flags2&^Diflag2Any)
	}
	if d.Flags2&(Diflag2Reflink|Diflag2CowExtSize) != 0 && !sb.HasReflink() {
		return c("flags2", "reflink flags 0x%x on a filesystem without reflink", d.Flags2&(Diflag2Reflink|Diflag2CowExtSize))
	}
	if d.Flags2&Diflag2Reflink != 0 && mode != ModeReg {
		return c("flags2", "reflink flag on a %s", typeName(mode))
	}
	if d.Flags2&Diflag2Reflink != 0 && d.Flags&DiflagRealtime != 0 {
		return c("flags2", "reflink flag on a realtime file")
	}
	return d.verifyCowExtSize(sb, c)
}

func typeName(mode uint16) string {
	switch mode {
	case ModeFIFO:
		return "fifo"
	case ModeChar:
		return "character device"
	case ModeDir:
		return "directory"
	case ModeBlock:
		return "block device"
	case ModeReg:
		return "regular file"
	case ModeSymlink:
		return "symlink"
	case ModeSocket:
		return "socket"
	case 0:
		return "free inode"
	}
	return fmt.Sprintf("type 0%o", mode)
}

type failf func(field, f string, a ...any) error

func (d *Dinode) verifyFork(attr bool, isize int, sb *Superblock, c failf) error {
	name := "data fork"
	size := d.DataForkSize(isize)
	if attr {
		name = "attr fork"
		size = d.AttrForkSize(isize)
	}
	format := d.ForkFormat(attr)
	n := d.ForkNextents(attr)
	mode := d.FileType()
	if !attr {
		if mode == ModeDir && d.Size != 0 && d.Size <= uint64(size) && format != FmtLocal {
			return c("format", "directory of %d bytes fits the %d-byte fork but is in %s format", d.Size, size, FormatName(format))
		}
		if mode == ModeSymlink && d.Size <= uint64(size) && format != FmtLocal && format != FmtExtents {
			return c("format", "short symlink in %s format", FormatName(format))
		}
		if d.Size > uint64(size) && format == FmtLocal {
			return c("size", "local data fork of %d bytes holds only %d", size, d.Size)
		}
	}
	switch format {
	case FmtLocal:
		if mode == ModeReg && !attr {
			return c("format", "regular file in local format")
		}
		if n != 0 {
			return c(name, "local format with %d extents", n)
		}
	case FmtExtents:
		if max := uint64(size / BmbtRecSize); n > max {
			return c(name, "%d extents exceed the fork's capacity of %d", n, max)
		}
	case FmtBtree:
		if max := d.MaxNextents(attr); n > max {
			return c(name, "%d extents exceed the counter limit %d", n, max)
		}
	default:
		return c(name, "invalid format %s", FormatName(format))
	}
	return nil
}

func (d *Dinode) verifyExtSize(sb *Superblock, c failf) error {
	mode := d.FileType()
	rt := d.Flags&DiflagRealtime != 0
	hint := d.Flags&DiflagExtSize != 0
	inherit := d.Flags&DiflagExtSzInherit != 0
	unit := uint64(sb.BlockSize)
	if rt {
		unit *= uint64(max(sb.RExtSize, 1))
	}
	switch {
	case (hint || inherit) && mode != ModeDir && mode != ModeReg:
		return c("flags", "extent size hint flags on a %s", typeName(mode))
	case hint && mode != ModeReg:
		return c("flags", "extsize flag on a %s", typeName(mode))
	case inherit && mode != ModeDir:
		return c("flags", "extszinherit flag on a %s", typeName(mode))
	case (hint || inherit) && d.ExtSize == 0:
		return c("extsize", "extent size hint flag with zero hint")
	case mode != 0 && !hint && !inherit && d.ExtSize != 0:
		return c("extsize", "hint %d without a hint flag", d.ExtSize)
	case uint64(d.ExtSize)*uint64(sb.BlockSize)%unit != 0:
		return c("extsize", "hint %d blocks not a multiple of the realtime extent", d.ExtSize)
	case d.ExtSize > MaxExtLen:
		return c("extsize", "hint %d exceeds the maximum extent length", d.ExtSize)
	case !rt && d.ExtSize > sb.AGBlocks/2:
		return c("extsize", "hint %d exceeds half an AG", d.ExtSize)
	}
	return nil
}

func (d *Dinode) verifyCowExtSize(sb *Superblock, c failf) error {
	mode := d.FileType()
	hint := d.Flags2&Diflag2CowExtSize != 0
	switch {
	case hint && mode != ModeDir && mode != ModeReg:
		return c("flags2", "cowextsize flag on a %s", typeName(mode))
	case hint && d.CowExtSize == 0:
		return c("cowextsize", "cowextsize flag with zero hint")
	case mode != 0 && !hint && d.CowExtSize != 0:
		return c("cowextsize", "hint %d without the cowextsize flag", d.CowExtSize)
	case hint && d.Flags&DiflagRealtime != 0:
		return c("flags2", "cowextsize flag on a realtime file")
	case d.CowExtSize > MaxExtLen:
		return c("cowextsize", "hint %d exceeds the maximum extent length", d.CowExtSize)
	case d.CowExtSize > sb.AGBlocks/2:
		return c("cowextsize", "hint %d exceeds half an AG", d.CowExtSize)
	}
	return nil
}
