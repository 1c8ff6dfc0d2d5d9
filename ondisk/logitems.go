package ondisk

import (
	"encoding/binary"
	"fmt"
)

// Log item types (the first u16 of every item's format region, host order).
const (
	LogItemEFI      = 0x1236
	LogItemEFD      = 0x1237
	LogItemIUnlink  = 0x1238
	LogItemInode    = 0x123b
	LogItemBuf      = 0x123c
	LogItemDquot    = 0x123d
	LogItemQuotaOff = 0x123e
	LogItemICreate  = 0x123f
	LogItemRUI      = 0x1240
	LogItemRUD      = 0x1241
	LogItemCUI      = 0x1242
	LogItemCUD      = 0x1243
	LogItemBUI      = 0x1244
	LogItemBUD      = 0x1245
	LogItemATTRI    = 0x1246
	LogItemATTRD    = 0x1247
	LogItemXMI      = 0x1248
	LogItemXMD      = 0x1249
)

// LogMaxRegionsInItem bounds the regions of one item (a buffer of 64 KiB in
// 128-byte chunks, every other one logged, plus its format region).
const LogMaxRegionsInItem = 65536/BufLogChunk/2 + 1

// LogItemName names an item type as xfs_logprint does.
func LogItemName(t uint16) string {
	names := map[uint16]string{
		LogItemEFI: "EFI", LogItemEFD: "EFD", LogItemIUnlink: "IUNLINK", LogItemInode: "INODE",
		LogItemBuf: "BUF", LogItemDquot: "DQUOT", LogItemQuotaOff: "QUOTAOFF", LogItemICreate: "ICREATE",
		LogItemRUI: "RUI", LogItemRUD: "RUD", LogItemCUI: "CUI", LogItemCUD: "CUD",
		LogItemBUI: "BUI", LogItemBUD: "BUD", LogItemATTRI: "ATTRI", LogItemATTRD: "ATTRD",
		LogItemXMI: "XMI", LogItemXMD: "XMD",
	}
	if n, ok := names[t]; ok {
		return n
	}
	return fmt.Sprintf("0x%04x", t)
}

// IntentDone maps each intent item type to the type of its done item.
var IntentDone = map[uint16]uint16{
	LogItemEFI: LogItemEFD, LogItemRUI: LogItemRUD, LogItemCUI: LogItemCUD,
	LogItemBUI: LogItemBUD, LogItemATTRI: LogItemATTRD, LogItemXMI: LogItemXMD,
}

// IntentOf maps a done item type to its intent type.
var IntentOf = map[uint16]uint16{
	LogItemEFD: LogItemEFI, LogItemRUD: LogItemRUI, LogItemCUD: LogItemCUI,
	LogItemBUD: LogItemBUI, LogItemATTRD: LogItemATTRI, LogItemXMD: LogItemXMI,
}

// LogItemID returns the 64-bit id at offset 8 of an intent or done item's
// format region: every intent keeps its own id there and every done item
// the id of the intent it completes.
func LogItemID(p []byte, bo binary.ByteOrder) (uint64, error) {
	if len(p) < 16 {
		return 0, shortErr("log intent item", len(p), 16)
	}
	return bo.Uint64(p[8:]), nil
}

// FreeExtent is one extent of an extent-free intent (EFI): Len blocks
// from filesystem block Start.
type FreeExtent struct {
	Start uint64
	Len   uint32
}

// DecodeEFI decodes an EFI item's format region: a count at 4, the id at 8
// and the extents from 16, each a 64-bit start and a 32-bit length, padded
// to 16 bytes (64-bit kernels) or packed in 12 (32-bit ones), told apart
// by the region's length as the kernel does.
func DecodeEFI(p []byte, bo binary.ByteOrder) (uint64, []FreeExtent, error) {
	const s = "EFI log item"
	if len(p) < 16 {
		return 0, nil, shortErr(s, len(p), 16)
	}
	n := int(bo.Uint32(p[4:]))
	var size int
	switch {
	case n > 0 && len(p) == 16+16*n:
		size = 16
	case n > 0 && len(p) == 16+12*n:
		size = 12
	default:
		return 0, nil, Corrupt(s, "", "efi_nextents", "%d extents in a %d-byte region", n, len(p))
	}
	exts := make([]FreeExtent, n)
	for i := range exts {
		e := p[16+i*size:]
		exts[i] = FreeExtent{Start: bo.Uint64(e), Len: bo.Uint32(e[8:])}
	}
	return bo.Uint64(p[8:]), exts, nil
}

// Buffer log item flags and geometry (xfs_buf_log_format).
const (
	BufLogChunk      = 128 // bytes per data map bit
	BufLogChunkShift = 7
	BufLogInodeBuf   = 1 << 0 // only di_next_unlinked fields are replayed
	BufLogCancel     = 1 << 1 // buffer freed: earlier copies must not replay
	BufLogUDquotBuf  = 1 << 2
	BufLogPDquotBuf  = 1 << 3
	BufLogGDquotBuf  = 1 << 4
	BufLogDquotBufs  = BufLogUDquotBuf | BufLogPDquotBuf | BufLogGDquotBuf
	// BufLogMapWords is the size of blf_data_map in 32-bit words.
	BufLogMapWords   = 65536/BufLogChunk/32 + 1
	bufLogFormatHead = 20 // type, size, flags, len, blkno, map_size
	// BufLogMaxLen is the largest buffer (in basic blocks) a buffer item
	// may describe: 64 KiB, the largest metadata block.
	BufLogMaxLen = 65536 / BBSize
)

// BufLogFormat is a decoded xfs_buf_log_format (host byte order).
type BufLogFormat struct {
	Type, Size, Flags, Len uint16
	Blkno                  int64
	MapSize                uint32
	DataMap                []uint32
}

// DecodeBufLogFormat decodes a buffer item's format region and checks what
// replay relies on: a positive length of at most 64 KiB and a data map that
// fits both the region and the buffer.
func DecodeBufLogFormat(p []byte, bo binary.ByteOrder) (*BufLogFormat, error) {
	const s = "buffer log item"
	if len(p) < bufLogFormatHead {
		return nil, shortErr(s, len(p), bufLogFormatHead)
	}
	f := &BufLogFormat{Type: bo.Uint16(p), Size: bo.Uint16(p[2:]), Flags: bo.Uint16(p[4:]), Len: bo.Uint16(p[6:]),
		Blkno: int64(bo.Uint64(p[8:])), MapSize: bo.Uint32(p[16:])}
	if f.Type != LogItemBuf {
		return nil, Corrupt(s, "", "blf_type", "type 0x%04x is not a buffer item", f.Type)
	}
	if f.Len == 0 || f.Len > BufLogMaxLen {
		return nil, Corrupt(s, "", "blf_len", "buffer of %d basic blocks (1..%d allowed)", f.Len, BufLogMaxLen)
	}
	if f.Blkno < 0 {
		return nil, Corrupt(s, "", "blf_blkno", "negative block %d", f.Blkno)
	}
	if f.MapSize > BufLogMapWords || int(f.MapSize)*4 > len(p)-bufLogFormatHead {
		return nil, Corrupt(s, "", "blf_map_size", "data map of %d words does not fit (region %d bytes, at most %d words)", f.MapSize, len(p), BufLogMapWords)
	}
	f.DataMap = make([]uint32, f.MapSize)
	for i := range f.DataMap {
		f.DataMap[i] = bo.Uint32(p[bufLogFormatHead+4*i:])
	}
	return f, nil
}

// BufLogRun is one run of logged 128-byte chunks: its byte offset and
// length within the buffer.
type BufLogRun struct{ Off, Len int }

// Runs lists the runs of set bits in the data map, in order, as byte ranges
// of the buffer; runs reaching past the buffer's end are an error.
func (f *BufLogFormat) Runs() ([]BufLogRun, error) {
	nbits := len(f.DataMap) * 32
	var runs []BufLogRun
	for bit := 0; bit < nbits; {
		if f.DataMap[bit/32]&(1<<(bit%32)) == 0 {
			bit++
			continue
		}
		start := bit
		for bit < nbits && f.DataMap[bit/32]&(1<<(bit%32)) != 0 {
			bit++
		}
		r := BufLogRun{Off: start << BufLogChunkShift, Len: (bit - start) << BufLogChunkShift}
		if r.Off+r.Len > int(f.Len)*BBSize {
			return nil, Corrupt("buffer log item", fmt.Sprintf("daddr %d", f.Blkno), "blf_data_map",
				"logged chunks %d..%d lie past the buffer's %d bytes", start, bit-1, int(f.Len)*BBSize)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// BufLogType is the buffer type recorded in blf_flags (XFS_BLFT_*).
func (f *BufLogFormat) BufLogType() int { return int(f.Flags>>11) & 0x1f }

// Inode log item fields (ilf_fields).
const (
	ILogCore   = 0x001
	ILogDData  = 0x002
	ILogDExt   = 0x004
	ILogDBroot = 0x008
	ILogDev    = 0x010
	ILogUUID   = 0x020
	ILogAData  = 0x040
	ILogAExt   = 0x080
	ILogABroot = 0x100
	ILogDOwner = 0x200
	ILogAOwner = 0x400
	ILogDFork  = ILogDData | ILogDExt | ILogDBroot
	ILogAFork  = ILogAData | ILogAExt | ILogABroot

	InodeLogFormatSize   = 56 // struct xfs_inode_log_format (64-bit layout)
	InodeLogFormatSize32 = 52 // the packed layout older 32-bit kernels wrote
	LogDinodeSize        = DinodeV3CoreSize
)

// InodeLogFormat is a decoded xfs_inode_log_format.
type InodeLogFormat struct {
	Type, Size   uint16
	Fields       uint32
	ASize, DSize uint16
	Ino          uint64
	Rdev         uint32
	Blkno        int64
	Len          int32
	BOffset      int32
}

// DecodeInodeLogFormat decodes an inode item's format region in either of
// its two layouts (told apart by length, as the kernel does).
func DecodeInodeLogFormat(p []byte, bo binary.ByteOrder) (*InodeLogFormat, error) {
	const s = "inode log item"
	var f InodeLogFormat
	switch len(p) {
	case InodeLogFormatSize, InodeLogFormatSize32:
	default:
		return nil, Corrupt(s, "", "", "format region of %d bytes (want %d or %d)", len(p), InodeLogFormatSize, InodeLogFormatSize32)
	}
	f.Type, f.Size, f.Fields = bo.Uint16(p), bo.Uint16(p[2:]), bo.Uint32(p[4:])
	f.ASize, f.DSize = bo.Uint16(p[8:]), bo.Uint16(p[10:])
	o := 16 // 64-bit layout pads ilf_pad before ilf_ino
	if len(p) == InodeLogFormatSize32 {
		o = 12
	}
	f.Ino = bo.Uint64(p[o:])
	f.Rdev = bo.Uint32(p[o+8:])
	f.Blkno = int64(bo.Uint64(p[o+24:]))
	f.Len = int32(bo.Uint32(p[o+32:]))
	f.BOffset = int32(bo.Uint32(p[o+36:]))
	where := fmt.Sprintf("inode %d", f.Ino)
	switch {
	case f.Type != LogItemInode:
		return nil, Corrupt(s, where, "ilf_type", "type 0x%04x is not an inode item", f.Type)
	case f.Size < 2 || f.Size > 4:
		return nil, Corrupt(s, where, "ilf_size", "%d regions (2..4 allowed)", f.Size)
	case f.Fields&ILogCore == 0:
		return nil, Corrupt(s, where, "ilf_fields", "inode core not logged (fields 0x%x)", f.Fields)
	case f.Blkno < 0 || f.Len <= 0 || f.Len > BufLogMaxLen:
		return nil, Corrupt(s, where, "ilf_blkno", "inode buffer at daddr %d of %d blocks", f.Blkno, f.Len)
	case f.BOffset < 0 || int(f.BOffset)+DinodeV3CoreSize > int(f.Len)*BBSize:
		return nil, Corrupt(s, where, "ilf_boffset", "inode at offset %d outside its %d-block buffer", f.BOffset, f.Len)
	}
	return &f, nil
}

// logDinodeFields lists the widths of the xfs_log_dinode fields in order:
// the layout is the on-disk dinode's, but in the logging host's byte order.
// 0 marks a timestamp (8 bytes, converted as a whole or as two halves),
// negative widths bytes copied as they are.
var logDinodeFields = []int{
	2, 2, 1, 1, -2, 4, 4, 4, 2, 2, 8, // magic .. projid_hi, big_nextents/pad
	0, 0, 0, // atime, mtime, ctime
	8, 8, 4, 4, 2, 1, 1, 4, 2, 2, 4, // size .. gen
	4, 4, 8, 8, 8, 4, -12, // next_unlinked, crc, changecount, lsn, flags2, cowextsize, pad2
	0, 8, -16, // crtime, ino, uuid
}

// Offsets in the v3 dinode core that replay treats specially.
const (
	dinodeOnlinkOff     = 6
	dinodeNextUnlinkOff = 96
	DinodeLSNOff        = 112
	dinodeFlags2Off     = 120
	dinodePad2Off       = 132
	dinodeV3PadOff      = 24
)

// LogDinodeToDisk converts a logged inode core (xfs_log_dinode in byte order
// bo) into the v3 on-disk core at dst, as recovery does: di_next_unlinked
// keeps its on-disk value (it is logged through the inode buffer), the LSN
// becomes lsn, and the CRC is left for the caller to compute once the forks
// are in place. The logged core may be shorter than a full core only if it
// is not a v3 inode, which v5 filesystems never have.
func LogDinodeToDisk(src []byte, bo binary.ByteOrder, dst []byte, lsn LSN) error {
	const s = "logged inode core"
	if len(src) < LogDinodeSize || len(dst) < DinodeV3CoreSize {
		return shortErr(s, len(src), LogDinodeSize)
	}
	if m := bo.Uint16(src); m != DinodeMagic {
		return Corrupt(s, "", "di_magic", "bad magic 0x%04x", m)
	}
	if v := src[4]; v != 3 {
		return Corrupt(s, "", "di_version", "version %d inode on a v5 filesystem", v)
	}
	bigtime := bo.Uint64(src[dinodeFlags2Off:])&Diflag2Bigtime != 0
	next := binary.BigEndian.Uint32(dst[dinodeNextUnlinkOff:])
	be := binary.BigEndian
	off := 0
	for _, w := range logDinodeFields {
		switch {
		case w < 0:
			copy(dst[off:off-w], src[off:off-w])
			off -= w
			continue
		case w == 0:
			if bigtime {
				be.PutUint64(dst[off:], bo.Uint64(src[off:]))
			} else {
				// Legacy timestamps are two 32-bit halves: seconds first.
				be.PutUint32(dst[off:], bo.Uint32(src[off:]))
				be.PutUint32(dst[off+4:], bo.Uint32(src[off+4:]))
			}
			w = 8
		case w == 1:
			dst[off] = src[off]
		case w == 2:
			be.PutUint16(dst[off:], bo.Uint16(src[off:]))
		case w == 4:
			be.PutUint32(dst[off:], bo.Uint32(src[off:]))
		case w == 8:
			be.PutUint64(dst[off:], bo.Uint64(src[off:]))
		}
		off += w
	}
	clear(dst[dinodeOnlinkOff : dinodeOnlinkOff+2])
	clear(dst[dinodePad2Off : dinodePad2Off+12])
	if bo.Uint64(src[dinodeFlags2Off:])&Diflag2Nrext64 == 0 {
		clear(dst[dinodeV3PadOff : dinodeV3PadOff+8])
	}
	be.PutUint32(dst[dinodeNextUnlinkOff:], next)
	be.PutUint64(dst[DinodeLSNOff:], uint64(lsn))
	return nil
}

// Long-form B-tree block header length with CRCs (the in-core root of an
// inode's bmbt as logged) and the on-disk root header (xfs_bmdr_block).
const (
	bmbtCRCBlockLen = 72
	bmdrHeaderLen   = 4
	bmbtKeyPtrLen   = 16 // one key and one pointer, 8 bytes each
	bmbtRecLen      = 16
)

// BmbtRootToDisk converts a logged in-core bmbt root (a long-form block
// header followed by records, or keys and pointers laid out for the
// logged size) into the on-disk root of a fork of forkSize bytes.
func BmbtRootToDisk(src []byte, dst []byte) error {
	const s = "logged bmbt root"
	if len(src) < bmbtCRCBlockLen {
		return shortErr(s, len(src), bmbtCRCBlockLen)
	}
	if len(dst) < bmdrHeaderLen {
		return Corrupt(s, "", "", "fork of %d bytes cannot hold a root", len(dst))
	}
	be := binary.BigEndian
	level, n := be.Uint16(src[4:]), int(be.Uint16(src[6:]))
	clear(dst)
	be.PutUint16(dst, level)
	be.PutUint16(dst[2:], uint16(n))
	if level == 0 {
		// A root holding records: they follow the header in both forms.
		if bmbtCRCBlockLen+n*bmbtRecLen > len(src) || bmdrHeaderLen+n*bmbtRecLen > len(dst) {
			return Corrupt(s, "", "bb_numrecs", "%d records do not fit (logged %d bytes, fork %d)", n, len(src), len(dst))
		}
		copy(dst[bmdrHeaderLen:], src[bmbtCRCBlockLen:bmbtCRCBlockLen+n*bmbtRecLen])
		return nil
	}
	smax := (len(src) - bmbtCRCBlockLen) / bmbtKeyPtrLen
	dmax := (len(dst) - bmdrHeaderLen) / bmbtKeyPtrLen
	if n > smax || n > dmax {
		return Corrupt(s, "", "bb_numrecs", "%d keys do not fit (room for %d logged, %d on disk)", n, smax, dmax)
	}
	copy(dst[bmdrHeaderLen:], src[bmbtCRCBlockLen:bmbtCRCBlockLen+8*n])
	sp := bmbtCRCBlockLen + 8*smax
	dp := bmdrHeaderLen + 8*dmax
	copy(dst[dp:], src[sp:sp+8*n])
	return nil
}

// ICreateLog is a decoded xfs_icreate_log: a new inode chunk to initialise.
// Unlike other items its fields are big-endian.
type ICreateLog struct {
	Type, Size uint16
	AG, AGBno  uint32
	Count      uint32 // inodes
	ISize      uint32
	Length     uint32 // blocks
	Gen        uint32
}

// ICreateLogSize is sizeof(struct xfs_icreate_log).
const ICreateLogSize = 28

// DecodeICreateLog decodes an icreate item (type and size in host order bo).
func DecodeICreateLog(p []byte, bo binary.ByteOrder) (*ICreateLog, error) {
	if len(p) < ICreateLogSize {
		return nil, shortErr("icreate log item", len(p), ICreateLogSize)
	}
	be := binary.BigEndian
	return &ICreateLog{Type: bo.Uint16(p), Size: bo.Uint16(p[2:]), AG: be.Uint32(p[4:]), AGBno: be.Uint32(p[8:]),
		Count: be.Uint32(p[12:]), ISize: be.Uint32(p[16:]), Length: be.Uint32(p[20:]), Gen: be.Uint32(p[24:])}, nil
}

// MetaBlockStamp describes where a self-describing metadata block keeps its
// CRC, LSN and UUID, found by its magic number as recovery does. Ok is
// false for blocks without such a header (inode buffers carry one per
// inode; see IsInodeBuffer). PerBlock: every filesystem block of the buffer
// has its own header (remote attribute values; a remote symlink has one
// header per buffer).
type MetaBlockStamp struct {
	Ok       bool
	Name     string
	CRCOff   int
	LSNOff   int // -1: no LSN (remote attribute blocks are written unlogged)
	UUIDOff  int
	PerBlock bool
}

// StampOf identifies a metadata block by its magic.
func StampOf(b []byte) MetaBlockStamp {
	if len(b) < 64 {
		return MetaBlockStamp{}
	}
	be := binary.BigEndian
	switch be.Uint32(b) {
	case SBMagic:
		return MetaBlockStamp{true, "superblock", 224, 240, 248, false}
	case AGFMagic:
		return MetaBlockStamp{true, "AGF", AGFCRCOff, 208, 64, false}
	case AGIMagic:
		return MetaBlockStamp{true, "AGI", AGICRCOff, 320, 296, false}
	case AGFLMagic:
		return MetaBlockStamp{true, "AGFL", AGFLCRCOff, 24, 8, false}
	case BnobtMagic, CntbtMagic, InobtMagic, FinobtMagic, RmapbtMagic, RefcbtMagic:
		return MetaBlockStamp{true, "btree block", ShortCRCOff, 24, 32, false}
	case BmbtMagic:
		return MetaBlockStamp{true, "bmbt block", LongCRCOff, 32, 40, false}
	case Dir3BlockMagic, Dir3DataMagic, Dir3FreeMagic:
		return MetaBlockStamp{true, "directory block", Dir3CRCOff, 16, 24, false}
	case Attr3RmtMagic:
		return MetaBlockStamp{true, "remote attribute block", Attr3RmtCRCOff, -1, 56, true}
	case SymlinkMagic:
		return MetaBlockStamp{true, "symlink block", 12, 48, 16, false}
	}
	switch be.Uint16(b[8:]) {
	case DA3NodeMagic, Attr3LeafMagic, Dir3Leaf1Magic, Dir3LeafNMagic:
		return MetaBlockStamp{true, "da block", DA3CRCOff, 24, 32, false}
	}
	return MetaBlockStamp{}
}

// IsInodeBuffer reports whether b starts with an inode (magic "IN").
func IsInodeBuffer(b []byte) bool {
	return len(b) >= 2 && binary.BigEndian.Uint16(b) == DinodeMagic
}
