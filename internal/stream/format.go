package stream

import (
	"encoding/binary"
	"hash/crc32"
	"strconv"
)

// Format version. Readers accept any minor version of the major version they
// know; see docs/stream-format.md for the version policy.
const (
	VersionMajor = 1
	VersionMinor = 0
)

// Sizes and limits. Every length field read from a stream is checked against
// one of these before anything is allocated.
const (
	MediaHeaderSize  = 128 // bytes at the start of every media (stream) file
	ChunkHeaderSize  = 48  // uncompressed header in front of every chunk
	RecordHeaderSize = 40  // header in front of every record

	DefaultChunkSize = 1 << 20 // logical bytes per chunk
	MinChunkSize     = 64 << 10
	MaxChunkSize     = 8 << 20

	// MaxDataPiece is the largest amount of file data carried by one DATA
	// record; larger extents are split into several records.
	MaxDataPiece = 1 << 20
	// maxBatch bounds the payload of XATTRS, DIRENTS and INDEX records.
	maxBatch = 1 << 20
	// MaxRecordPayload is the largest payload a reader accepts.
	MaxRecordPayload = 1<<20 + 64<<10

	MaxNameLen     = 1024 // directory entry, xattr and hard link names
	MaxSymlinkLen  = 4096 // symlink targets
	MaxXattrValue  = 64<<10 + 4096
	MaxLabelLen    = 255       // session, media and filesystem labels
	MaxSubtreeLen  = 4096      // one subtree path in the header
	MaxSubtrees    = 1024      // number of subtree paths in the header
	maxHeaderBytes = 256 << 10 // whole HEADER payload

	// BlockSize limits for fixed-block output.
	MinBlockSize = 512
	MaxBlockSize = 16 << 20
)

// Magic numbers (8 bytes each). They share a non-ASCII first byte and a
// CR/0x8A tail so that text-mode mangling is detected, and differ in the
// middle so the three framings can never be confused.
var (
	mediaMagic  = [8]byte{0xD7, 'X', 'K', 'M', 'E', 'D', 0x0D, 0x8A}
	chunkMagic  = [8]byte{0xD7, 'X', 'K', 'C', 'H', 'K', 0x0D, 0x8A}
	recordMagic = [8]byte{0xD7, 'X', 'K', 'R', 'E', 'C', 0x0D, 0x8A}
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32                 { return crc32.Checksum(b, castagnoli) }
func crcUpdate(c uint32, b []byte) uint32 { return crc32.Update(c, castagnoli, b) }

var le = binary.LittleEndian

// Record types.
const (
	recHeader    uint16 = 1
	recInode     uint16 = 2
	recXattrs    uint16 = 3
	recDirents   uint16 = 4
	recData      uint16 = 5
	recInodeEnd  uint16 = 6
	recDirsEnd   uint16 = 7
	recHardLink  uint16 = 8
	recEnd       uint16 = 9
	recIndex     uint16 = 10
	recTrailer   uint16 = 11
	recOptional  uint16 = 0x8000 // types with this bit set may be skipped by readers that do not know them
	recTypeLimit uint16 = 11
)

func recTypeName(t uint16) string {
	switch t {
	case recHeader:
		return "HEADER"
	case recInode:
		return "INODE"
	case recXattrs:
		return "XATTRS"
	case recDirents:
		return "DIRENTS"
	case recData:
		return "DATA"
	case recInodeEnd:
		return "INODE_END"
	case recDirsEnd:
		return "DIRS_END"
	case recHardLink:
		return "HARDLINK"
	case recEnd:
		return "END"
	case recIndex:
		return "INDEX"
	case recTrailer:
		return "TRAILER"
	}
	if t&recOptional != 0 {
		return "OPTIONAL"
	}
	return "UNKNOWN"
}

// ---- media header ----

type mediaHeader struct {
	major, minor uint16
	session      [16]byte
	streamIndex  uint32
	streamCount  uint32
	mediaSeq     uint32
	blockSize    uint32
	logical      int64  // logical offset of the first chunk in this media file
	chunkSeq     uint64 // sequence number of the first chunk in this media file
	chunkSize    uint32
	compression  Compression
}

func (m *mediaHeader) encode(b []byte) {
	clear(b[:MediaHeaderSize])
	copy(b[0:8], mediaMagic[:])
	le.PutUint16(b[8:], m.major)
	le.PutUint16(b[10:], m.minor)
	le.PutUint32(b[12:], MediaHeaderSize)
	copy(b[16:32], m.session[:])
	le.PutUint32(b[32:], m.streamIndex)
	le.PutUint32(b[36:], m.streamCount)
	le.PutUint32(b[40:], m.mediaSeq)
	le.PutUint32(b[44:], m.blockSize)
	le.PutUint64(b[48:], uint64(m.logical))
	le.PutUint64(b[56:], m.chunkSeq)
	le.PutUint32(b[64:], m.chunkSize)
	b[68] = byte(m.compression)
	le.PutUint32(b[124:], crc(b[:124]))
}

// decodeMediaHeader returns a reason string when b is not a valid media header.
func decodeMediaHeader(b []byte, noCRC bool) (mediaHeader, string) {
	var m mediaHeader
	if len(b) < MediaHeaderSize {
		return m, "short media header"
	}
	if [8]byte(b[0:8]) != mediaMagic {
		return m, "bad media header magic"
	}
	if !noCRC && le.Uint32(b[124:]) != crc(b[:124]) {
		return m, "media header CRC mismatch"
	}
	m.major = le.Uint16(b[8:])
	m.minor = le.Uint16(b[10:])
	if m.major != VersionMajor {
		return m, "unsupported format major version " + strconv.Itoa(int(m.major))
	}
	if le.Uint32(b[12:]) != MediaHeaderSize {
		return m, "unsupported media header size"
	}
	copy(m.session[:], b[16:32])
	m.streamIndex = le.Uint32(b[32:])
	m.streamCount = le.Uint32(b[36:])
	m.mediaSeq = le.Uint32(b[40:])
	m.blockSize = le.Uint32(b[44:])
	m.logical = int64(le.Uint64(b[48:]))
	m.chunkSeq = le.Uint64(b[56:])
	m.chunkSize = le.Uint32(b[64:])
	m.compression = Compression(b[68])
	if m.logical < 0 {
		return m, "negative logical offset in media header"
	}
	return m, ""
}

// ---- chunk header ----

type chunkHeader struct {
	seq         uint64
	logical     int64
	rawLen      uint32
	storedLen   uint32
	compression Compression
	storedCRC   uint32
	tag         uint32
}

func (c *chunkHeader) encode(b []byte) {
	copy(b[0:8], chunkMagic[:])
	le.PutUint64(b[8:], c.seq)
	le.PutUint64(b[16:], uint64(c.logical))
	le.PutUint32(b[24:], c.rawLen)
	le.PutUint32(b[28:], c.storedLen)
	b[32] = byte(c.compression)
	b[33] = 0
	le.PutUint16(b[34:], 0)
	le.PutUint32(b[36:], c.storedCRC)
	le.PutUint32(b[40:], c.tag)
	le.PutUint32(b[44:], crc(b[:44]))
}

// decodeChunkHeader validates the magic, header CRC and ranges.
func decodeChunkHeader(b []byte, noCRC bool) (chunkHeader, bool) {
	var c chunkHeader
	if len(b) < ChunkHeaderSize || [8]byte(b[0:8]) != chunkMagic {
		return c, false
	}
	if !noCRC && le.Uint32(b[44:]) != crc(b[:44]) {
		return c, false
	}
	c.seq = le.Uint64(b[8:])
	c.logical = int64(le.Uint64(b[16:]))
	c.rawLen = le.Uint32(b[24:])
	c.storedLen = le.Uint32(b[28:])
	c.compression = Compression(b[32])
	c.storedCRC = le.Uint32(b[36:])
	c.tag = le.Uint32(b[40:])
	if c.logical < 0 || c.rawLen == 0 || c.rawLen > MaxChunkSize || c.storedLen == 0 || c.storedLen > c.rawLen {
		return c, false
	}
	switch c.compression {
	case CompressNone:
		if c.storedLen != c.rawLen {
			return c, false
		}
	case CompressZstd, CompressXZ:
	default:
		return c, false
	}
	return c, true
}

// streamTag identifies the (session, stream) pair a chunk belongs to.
func streamTag(session [16]byte, index uint32) uint32 {
	var b [20]byte
	copy(b[:], session[:])
	le.PutUint32(b[16:], index)
	return crc(b[:])
}

// ---- record header ----

type recHdr struct {
	typ    uint16
	flags  uint16
	length uint32
	seq    uint64
	ino    uint64
	crc    uint32
}

// encodeRecordHeader fills b[0:40] for a record with the given payload.
func encodeRecordHeader(b []byte, h *recHdr, payload []byte) {
	copy(b[0:8], recordMagic[:])
	le.PutUint16(b[8:], h.typ)
	le.PutUint16(b[10:], h.flags)
	le.PutUint32(b[12:], h.length)
	le.PutUint64(b[16:], h.seq)
	le.PutUint64(b[24:], h.ino)
	h.crc = crcUpdate(crc(b[:32]), payload)
	le.PutUint32(b[32:], h.crc)
	le.PutUint32(b[36:], crc(b[:36]))
}

// decodeRecordHeader checks magic, header CRC and the length cap.
func decodeRecordHeader(b []byte, noCRC bool) (recHdr, bool) {
	var h recHdr
	if len(b) < RecordHeaderSize || [8]byte(b[0:8]) != recordMagic {
		return h, false
	}
	if !noCRC && le.Uint32(b[36:]) != crc(b[:36]) {
		return h, false
	}
	h.typ = le.Uint16(b[8:])
	h.flags = le.Uint16(b[10:])
	h.length = le.Uint32(b[12:])
	h.seq = le.Uint64(b[16:])
	h.ino = le.Uint64(b[24:])
	h.crc = le.Uint32(b[32:])
	if h.length > MaxRecordPayload {
		return h, false
	}
	return h, true
}
