package ondisk

import (
	"encoding/binary"
	"fmt"
)

// B-tree block magic numbers (v5, CRC-enabled forms).
const (
	BnobtMagic    = 0x41423342 // "AB3B" by-block free space
	CntbtMagic    = 0x41423343 // "AB3C" by-size free space
	InobtMagic    = 0x49414233 // "IAB3" inode B-tree
	FinobtMagic   = 0x46494233 // "FIB3" free inode B-tree
	RmapbtMagic   = 0x524d4233 // "RMB3" reverse mapping B-tree
	RefcbtMagic   = 0x52334643 // "R3FC" reference count B-tree
	BmbtMagic     = 0x424d4133 // "BMA3" inode extent map B-tree
	ShortHdrSize  = 56         // v5 short-form block header
	LongHdrSize   = 72         // v5 long-form block header
	ShortCRCOff   = 52
	LongCRCOff    = 64
	NullShortPtr  = NullAGBno
	NullLongPtr   = NullFSB
	maxBtreeLevel = 9
)

// BtreeName names a B-tree magic for messages.
func BtreeName(magic uint32) string {
	switch magic {
	case BnobtMagic:
		return "bnobt"
	case CntbtMagic:
		return "cntbt"
	case InobtMagic:
		return "inobt"
	case FinobtMagic:
		return "finobt"
	case RmapbtMagic:
		return "rmapbt"
	case RefcbtMagic:
		return "refcountbt"
	case BmbtMagic:
		return "bmbt"
	}
	return fmt.Sprintf("btree(0x%08x)", magic)
}

// IsLongBtree reports whether blocks with this magic use the long header
// (64-bit sibling pointers): only the bmbt does.
func IsLongBtree(magic uint32) bool { return magic == BmbtMagic }

// BtreeHeader is the common decoded header of a short- or long-form v5
// B-tree block. Sibling pointers are widened to 64 bits; for short-form
// blocks NullShortPtr is mapped to NullLongPtr.
type BtreeHeader struct {
	Magic    uint32
	Level    uint16
	NumRecs  uint16
	LeftSib  uint64
	RightSib uint64
	Blkno    uint64 // daddr of this block, self-describing
	LSN      uint64
	UUID     UUID
	Owner    uint64 // AG number (short) or inode number (long)
	CRC      uint32
	Long     bool
}

// HdrSize is the size of the header in bytes.
func (h *BtreeHeader) HdrSize() int {
	if h.Long {
		return LongHdrSize
	}
	return ShortHdrSize
}

// DecodeBtreeHeader decodes a v5 B-tree block header; long selects the form.
func DecodeBtreeHeader(buf []byte, long bool) (*BtreeHeader, error) {
	be := binary.BigEndian
	h := &BtreeHeader{Long: long}
	if long {
		if len(buf) < LongHdrSize {
			return nil, shortErr("btree block", len(buf), LongHdrSize)
		}
		h.Magic = be.Uint32(buf[0:])
		h.Level = be.Uint16(buf[4:])
		h.NumRecs = be.Uint16(buf[6:])
		h.LeftSib = be.Uint64(buf[8:])
		h.RightSib = be.Uint64(buf[16:])
		h.Blkno = be.Uint64(buf[24:])
		h.LSN = be.Uint64(buf[32:])
		copy(h.UUID[:], buf[40:56])
		h.Owner = be.Uint64(buf[56:])
		h.CRC = binary.LittleEndian.Uint32(buf[64:])
		return h, nil
	}
	if len(buf) < ShortHdrSize {
		return nil, shortErr("btree block", len(buf), ShortHdrSize)
	}
	h.Magic = be.Uint32(buf[0:])
	h.Level = be.Uint16(buf[4:])
	h.NumRecs = be.Uint16(buf[6:])
	h.LeftSib = widen(be.Uint32(buf[8:]))
	h.RightSib = widen(be.Uint32(buf[12:]))
	h.Blkno = be.Uint64(buf[16:])
	h.LSN = be.Uint64(buf[24:])
	copy(h.UUID[:], buf[32:48])
	h.Owner = uint64(be.Uint32(buf[48:]))
	h.CRC = binary.LittleEndian.Uint32(buf[52:])
	return h, nil
}

func widen(p uint32) uint64 {
	if p == NullShortPtr {
		return NullLongPtr
	}
	return uint64(p)
}

func narrow(p uint64) uint32 {
	if p == NullLongPtr {
		return NullShortPtr
	}
	return uint32(p)
}

// Encode writes the header into buf (CRC is not computed; call
// SealBtreeBlock once the records are in place).
func (h *BtreeHeader) Encode(buf []byte) {
	be := binary.BigEndian
	be.PutUint32(buf[0:], h.Magic)
	be.PutUint16(buf[4:], h.Level)
	be.PutUint16(buf[6:], h.NumRecs)
	if h.Long {
		be.PutUint64(buf[8:], h.LeftSib)
		be.PutUint64(buf[16:], h.RightSib)
		be.PutUint64(buf[24:], h.Blkno)
		be.PutUint64(buf[32:], h.LSN)
		copy(buf[40:56], h.UUID[:])
		be.PutUint64(buf[56:], h.Owner)
		be.PutUint32(buf[68:], 0) // pad
		return
	}
	be.PutUint32(buf[8:], narrow(h.LeftSib))
	be.PutUint32(buf[12:], narrow(h.RightSib))
	be.PutUint64(buf[16:], h.Blkno)
	be.PutUint64(buf[24:], h.LSN)
	copy(buf[32:48], h.UUID[:])
	be.PutUint32(buf[48:], uint32(h.Owner))
}

// SealBtreeBlock computes the CRC of a whole B-tree block.
func SealBtreeBlock(buf []byte, long bool) {
	if long {
		SetCRC(buf, LongCRCOff)
	} else {
		SetCRC(buf, ShortCRCOff)
	}
}

// VerifyBtreeBlock checks magic, CRC, UUID, self block number, owner and
// level of a whole B-tree block. Pass owner = ^uint64(0) to skip the owner
// check, level < 0 to skip the level check.
func VerifyBtreeBlock(buf []byte, magic uint32, uuid UUID, daddr uint64, owner uint64, level int, where string) (*BtreeHeader, error) {
	long := IsLongBtree(magic)
	name := BtreeName(magic) + " block"
	h, err := DecodeBtreeHeader(buf, long)
	if err != nil {
		return nil, err
	}
	c := func(field, f string, a ...any) error { return Corrupt(name, where, field, f, a...) }
	if h.Magic != magic {
		return h, c("magic", "bad magic 0x%08x, expected 0x%08x", h.Magic, magic)
	}
	crcOff := ShortCRCOff
	if long {
		crcOff = LongCRCOff
	}
	if !CRCOK(buf, crcOff) {
		return h, c("crc", "checksum mismatch (stored 0x%08x, computed 0x%08x)", StoredCRC(buf, crcOff), CRC32c(buf, crcOff))
	}
	if h.UUID != uuid {
		return h, c("uuid", "UUID %s does not match filesystem %s", h.UUID, uuid)
	}
	if h.Blkno != daddr {
		return h, c("blkno", "block claims daddr %d but was read from daddr %d", h.Blkno, daddr)
	}
	if owner != ^uint64(0) && h.Owner != owner {
		return h, c("owner", "owner %d, expected %d", h.Owner, owner)
	}
	if h.Level > maxBtreeLevel {
		return h, c("level", "level %d exceeds maximum %d", h.Level, maxBtreeLevel)
	}
	if level >= 0 && int(h.Level) != level {
		return h, c("level", "level %d, expected %d", h.Level, level)
	}
	return h, nil
}

// BtreeGeometry describes record, key and pointer sizes of one B-tree type,
// which place records, keys and pointers inside a block.
type BtreeGeometry struct {
	Magic   uint32
	RecSize int
	KeySize int // for overlapping trees (rmapbt) this is the low+high key pair
	PtrSize int
}

// Geometries of the v5 B-trees.
var (
	BnobtGeom  = BtreeGeometry{BnobtMagic, 8, 8, 4}
	CntbtGeom  = BtreeGeometry{CntbtMagic, 8, 8, 4}
	InobtGeom  = BtreeGeometry{InobtMagic, 16, 4, 4}
	FinobtGeom = BtreeGeometry{FinobtMagic, 16, 4, 4}
	RmapbtGeom = BtreeGeometry{RmapbtMagic, 24, 40, 4} // keys: low 20 bytes + high 20 bytes
	RefcbtGeom = BtreeGeometry{RefcbtMagic, 12, 4, 4}
	BmbtGeom   = BtreeGeometry{BmbtMagic, 16, 8, 8}
)

// MaxRecs is the number of records (leaf) or key/pointer pairs (node) that
// fit in a block of blockSize bytes.
func (g BtreeGeometry) MaxRecs(blockSize int, leaf bool) int {
	hdr := ShortHdrSize
	if IsLongBtree(g.Magic) {
		hdr = LongHdrSize
	}
	if leaf {
		return (blockSize - hdr) / g.RecSize
	}
	return (blockSize - hdr) / (g.KeySize + g.PtrSize)
}

// Rec returns the bytes of leaf record i (0-based).
func (g BtreeGeometry) Rec(buf []byte, hdrSize, i int) []byte {
	off := hdrSize + i*g.RecSize
	return buf[off : off+g.RecSize]
}

// Key returns the bytes of node key i.
func (g BtreeGeometry) Key(buf []byte, hdrSize, i int) []byte {
	off := hdrSize + i*g.KeySize
	return buf[off : off+g.KeySize]
}

// Ptr returns node pointer i; pointers start after MaxRecs keys.
func (g BtreeGeometry) Ptr(buf []byte, hdrSize, i int) uint64 {
	maxr := (len(buf) - hdrSize) / (g.KeySize + g.PtrSize)
	off := hdrSize + maxr*g.KeySize + i*g.PtrSize
	if g.PtrSize == 8 {
		return binary.BigEndian.Uint64(buf[off:])
	}
	return uint64(binary.BigEndian.Uint32(buf[off:]))
}

// SetPtr stores node pointer i.
func (g BtreeGeometry) SetPtr(buf []byte, hdrSize, i int, p uint64) {
	maxr := (len(buf) - hdrSize) / (g.KeySize + g.PtrSize)
	off := hdrSize + maxr*g.KeySize + i*g.PtrSize
	if g.PtrSize == 8 {
		binary.BigEndian.PutUint64(buf[off:], p)
	} else {
		binary.BigEndian.PutUint32(buf[off:], uint32(p))
	}
}
